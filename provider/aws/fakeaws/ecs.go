package fakeaws

import (
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

type taskDef struct {
	arn      string
	family   string
	revision int
	raw      map[string]any // the request, as registered
}

type deployment struct {
	id, status, taskDef, rollout, reason string
	created, updated                     time.Time
	steps                                int
	failed                               int // tasks that failed to start
}

// circuitBreakerThreshold is how many tasks of a deployment must fail
// before the deployment circuit breaker marks it FAILED: "0.5 * desired
// task count", with "a minimum threshold of 3 and a maximum threshold of
// 200" (Amazon ECS API reference, DeploymentCircuitBreaker; "How the
// Amazon ECS deployment circuit breaker detects failures", ECS developer
// guide).
func circuitBreakerThreshold(desired int) int {
	return min(200, max(3, (desired+1)/2))
}

type service struct {
	name, cluster, arn, status, launchType string
	desired                                int
	taskDef                                string
	deployments                            []*deployment
	events                                 []map[string]any
	tags                                   []any
	execEnabled                            bool
	created                                time.Time
}

type task struct {
	arn, id, cluster, service, taskDef, deployment string
	lastStatus, desiredStatus, health, reason      string
	created, started, stopped                      time.Time
	steps                                          int
	env                                            map[string]string
	logGroup, logStream                            string
	execEnabled                                    bool // launched with the service's enableExecuteCommand
}

func (f *Fake) arn(svc, res string) string {
	return fmt.Sprintf("arn:aws:%s:%s:%s:%s", svc, f.opts.Region, f.opts.Account, res)
}

func (f *Fake) id() string {
	f.seq++
	return fmt.Sprintf("%032x", f.seq*7919+1000003)
}

func (f *Fake) cluster(in map[string]any) (string, *apiError) {
	c := str(in, "cluster")
	if c == "" {
		c = "default"
	}
	if i := strings.LastIndex(c, "/"); strings.HasPrefix(c, "arn:") && i >= 0 {
		c = c[i+1:]
	}
	if !slices.Contains(f.opts.Clusters, c) {
		return "", errf(400, "ClusterNotFoundException", "Cluster not found.")
	}
	return c, nil
}

func (f *Fake) ecs(op string, in map[string]any) (any, *apiError) {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch op {
	case "RegisterTaskDefinition":
		return f.registerTaskDefinition(in)
	case "DescribeTaskDefinition":
		td, e := f.lookupTD(str(in, "taskDefinition"))
		if e != nil {
			return nil, e
		}
		return map[string]any{"taskDefinition": f.tdJSON(td)}, nil
	}
	cl, e := f.cluster(in)
	if e != nil {
		return nil, e
	}
	switch op {
	case "CreateService":
		return f.createService(cl, in)
	case "UpdateService":
		return f.updateService(cl, in)
	case "DescribeServices":
		var svcs, failures []any
		for _, n := range strs(in, "services") {
			s := f.svcs[cl+"/"+svcName(n)]
			if s == nil {
				failures = append(failures, map[string]any{"arn": f.arn("ecs", "service/"+cl+"/"+svcName(n)), "reason": "MISSING"})
				continue
			}
			f.reconcile(s)
			svcs = append(svcs, f.svcJSON(s, slices.Contains(strs(in, "include"), "TAGS")))
		}
		return map[string]any{"services": orEmpty(svcs), "failures": orEmpty(failures)}, nil
	case "ListTasks":
		sn := str(in, "serviceName")
		if sn != "" && f.svcs[cl+"/"+sn] == nil {
			return nil, errf(400, "ServiceNotFoundException", "Service not found.")
		}
		want := str(in, "desiredStatus")
		if want == "" {
			want = "RUNNING"
		}
		var arns []string
		for _, t := range f.tasks {
			if t.cluster == cl && (sn == "" || t.service == sn) && t.desiredStatus == want {
				arns = append(arns, t.arn)
			}
		}
		sort.Strings(arns)
		off, limit := 0, 100 // ECS's default and most
		if tok := str(in, "nextToken"); tok != "" {
			off, _ = strconv.Atoi(strings.TrimPrefix(tok, "fake-"))
			off = min(max(off, 0), len(arns))
		}
		if m, ok := num(in, "maxResults"); ok && m > 0 {
			limit = min(int(m), 100)
		}
		out := map[string]any{"taskArns": orEmptyS(arns[off:min(off+limit, len(arns))])}
		if off+limit < len(arns) {
			out["nextToken"] = "fake-" + strconv.Itoa(off+limit)
		}
		return out, nil
	case "DescribeTasks":
		var out, failures []any
		for _, a := range strs(in, "tasks") {
			t := f.tasks[a]
			if t == nil {
				for _, x := range f.tasks {
					if x.id == a {
						t = x
					}
				}
			}
			if t == nil || t.cluster != cl {
				failures = append(failures, map[string]any{"arn": a, "reason": "MISSING"})
				continue
			}
			out = append(out, f.taskJSON(t))
		}
		return map[string]any{"tasks": orEmpty(out), "failures": orEmpty(failures)}, nil
	case "ExecuteCommand":
		return f.executeCommand(cl, in) // exec.go
	case "DeleteService":
		s := f.svcs[cl+"/"+svcName(str(in, "service"))]
		if s == nil {
			return nil, errf(400, "ServiceNotFoundException", "Service not found.")
		}
		if s.desired > 0 && !boolean(in, "force") {
			return nil, errf(400, "InvalidParameterException", "The service cannot be stopped while it is scaled above 0.")
		}
		f.deleteService(s)
		return map[string]any{"service": f.svcJSON(s, false)}, nil
	}
	return nil, errf(400, "UnknownOperationException", "fakeaws: ECS operation %s is not implemented", op)
}

func svcName(n string) string {
	if i := strings.LastIndex(n, "/"); i >= 0 {
		return n[i+1:]
	}
	return n
}

func orEmpty(l []any) []any {
	if l == nil {
		return []any{}
	}
	return l
}

func orEmptyS(l []string) []string {
	if l == nil {
		return []string{}
	}
	return l
}

func (f *Fake) registerTaskDefinition(in map[string]any) (any, *apiError) {
	fam := str(in, "family")
	if fam == "" {
		return nil, errf(400, "ClientException", "Family is required.")
	}
	cds := list(in, "containerDefinitions")
	if len(cds) == 0 {
		return nil, errf(400, "ClientException", "Container definitions are required.")
	}
	for _, c := range cds {
		cm, _ := c.(map[string]any)
		if str(cm, "name") == "" || str(cm, "image") == "" {
			return nil, errf(400, "ClientException", "Container.name and Container.image should not be null or empty.")
		}
		for _, s := range list(cm, "secrets") {
			sm, _ := s.(map[string]any)
			if str(sm, "valueFrom") == "" {
				return nil, errf(400, "ClientException", "secrets.valueFrom should not be null or empty.")
			}
		}
	}
	if aerr := normalizeContainers(in); aerr != nil {
		return nil, aerr
	}
	rev := len(f.tds[fam]) + 1
	td := &taskDef{arn: f.arn("ecs", fmt.Sprintf("task-definition/%s:%d", fam, rev)), family: fam, revision: rev, raw: in}
	f.tds[fam] = append(f.tds[fam], td)
	return map[string]any{"taskDefinition": f.tdJSON(td), "tags": orEmpty(list(in, "tags"))}, nil
}

// normalizeContainers fills in what ECS fills in on registration, so that
// DescribeTaskDefinition answers with it as ECS does, and refuses what
// ECS refuses about it:
//   - under awsvpc, "only specify the containerPort. The hostPort can be
//     left blank or it must be the same value as the containerPort"
//     (Amazon ECS developer guide, task definition parameters,
//     portMappings); a blank hostPort comes back equal to the
//     containerPort;
//   - a container's mountPoints and volumesFrom come back as empty lists
//     when not given (the aws-cli example of describe-task-definition,
//     hello_world:8).
func normalizeContainers(in map[string]any) *apiError {
	awsvpc := str(in, "networkMode") == "awsvpc"
	for _, c := range list(in, "containerDefinitions") {
		cm, _ := c.(map[string]any)
		for _, pm := range list(cm, "portMappings") {
			m, _ := pm.(map[string]any)
			cp, _ := num(m, "containerPort")
			hp, ok := num(m, "hostPort")
			if awsvpc && ok && hp != cp {
				return errf(400, "ClientException", "When networkMode=awsvpc, the host ports and container ports in port mappings must match.")
			}
			if awsvpc && !ok {
				m["hostPort"] = cp
			}
		}
		for _, k := range []string{"mountPoints", "volumesFrom"} {
			if _, ok := cm[k]; !ok {
				cm[k] = []any{}
			}
		}
	}
	return nil
}

func (f *Fake) lookupTD(ref string) (*taskDef, *apiError) {
	if i := strings.Index(ref, "task-definition/"); i >= 0 {
		ref = ref[i+len("task-definition/"):]
	}
	fam, rev, hasRev := strings.Cut(ref, ":")
	revs := f.tds[fam]
	if len(revs) == 0 {
		return nil, errf(400, "ClientException", "Unable to describe task definition.")
	}
	if !hasRev {
		return revs[len(revs)-1], nil
	}
	var n int
	if _, err := fmt.Sscanf(rev, "%d", &n); err != nil || n < 1 || n > len(revs) {
		return nil, errf(400, "ClientException", "Unable to describe task definition.")
	}
	return revs[n-1], nil
}

func (f *Fake) tdJSON(td *taskDef) map[string]any {
	out := map[string]any{}
	for k, v := range td.raw {
		if k != "tags" {
			out[k] = v
		}
	}
	out["taskDefinitionArn"] = td.arn
	out["revision"] = td.revision
	out["status"] = "ACTIVE"
	return out
}

func (f *Fake) createService(cl string, in map[string]any) (any, *apiError) {
	name := str(in, "serviceName")
	if name == "" {
		return nil, errf(400, "InvalidParameterException", "serviceName is required.")
	}
	if s := f.svcs[cl+"/"+name]; s != nil && s.status == "ACTIVE" {
		return nil, errf(400, "InvalidParameterException", "Creation of service was not idempotent.")
	}
	td, e := f.lookupTD(str(in, "taskDefinition"))
	if e != nil {
		return nil, errf(400, "InvalidParameterException", "TaskDefinition not found.")
	}
	if boolean(in, "enableExecuteCommand") && str(td.raw, "taskRoleArn") == "" {
		return nil, errf(400, "InvalidParameterException", msgTaskRole, "created")
	}
	n, _ := num(in, "desiredCount")
	now := f.now()
	s := &service{name: name, cluster: cl, arn: f.arn("ecs", "service/"+cl+"/"+name), status: "ACTIVE",
		launchType: str(in, "launchType"), desired: int(n), taskDef: td.arn, tags: list(in, "tags"),
		execEnabled: boolean(in, "enableExecuteCommand"), created: now}
	f.newDeployment(s)
	f.svcs[cl+"/"+name] = s
	return map[string]any{"service": f.svcJSON(s, false)}, nil
}

func (f *Fake) newDeployment(s *service) {
	now := f.now()
	for _, d := range s.deployments {
		d.status = "ACTIVE"
	}
	d := &deployment{id: "ecs-svc/" + f.id()[13:], status: "PRIMARY", taskDef: s.taskDef, rollout: "IN_PROGRESS",
		reason: "ECS deployment " + "in progress.", created: now, updated: now}
	s.deployments = append([]*deployment{d}, s.deployments...)
}

func (f *Fake) updateService(cl string, in map[string]any) (any, *apiError) {
	s := f.svcs[cl+"/"+svcName(str(in, "service"))]
	if s == nil {
		return nil, errf(400, "ServiceNotFoundException", "Service not found.")
	}
	if s.status != "ACTIVE" {
		return nil, errf(400, "ServiceNotActiveException", "Service was not ACTIVE.")
	}
	tdArn := s.taskDef
	if ref := str(in, "taskDefinition"); ref != "" {
		td, e := f.lookupTD(ref)
		if e != nil {
			return nil, errf(400, "InvalidParameterException", "TaskDefinition not found.")
		}
		tdArn = td.arn
	}
	if boolean(in, "enableExecuteCommand") {
		if td, _ := f.lookupTD(tdArn); td == nil || str(td.raw, "taskRoleArn") == "" {
			return nil, errf(400, "InvalidParameterException", msgTaskRole, "updated")
		}
	}
	if n, ok := num(in, "desiredCount"); ok {
		if n < 0 {
			return nil, errf(400, "InvalidParameterException", "desiredCount must be >= 0.")
		}
		s.desired = int(n)
	}
	roll := boolean(in, "forceNewDeployment")
	if tdArn != s.taskDef {
		s.taskDef, roll = tdArn, true
	}
	if _, ok := in["enableExecuteCommand"]; ok {
		s.execEnabled = boolean(in, "enableExecuteCommand")
	}
	if roll {
		f.newDeployment(s)
	}
	return map[string]any{"service": f.svcJSON(s, false)}, nil
}

func (f *Fake) event(s *service, msg string) {
	s.events = append([]map[string]any{{"id": f.id()[24:], "createdAt": epoch(f.now()), "message": msg}}, s.events...)
}

func (f *Fake) badImage(tdArn string) string {
	td, e := f.lookupTD(tdArn)
	if e != nil {
		return ""
	}
	for _, c := range list(td.raw, "containerDefinitions") {
		img := str(c.(map[string]any), "image")
		if slices.Contains(f.opts.BadImages, img) {
			return img
		}
	}
	return ""
}

// reconcile moves s one step towards its desired state.
func (f *Fake) reconcile(s *service) {
	if s.status != "ACTIVE" {
		return
	}
	now := f.now()
	p := s.deployments[0]
	if p.rollout == "FAILED" {
		return
	}
	if img := f.badImage(p.taskDef); img != "" {
		// Each task spends a step on the pull (the agent retries it)
		// before it stops with CannotPullContainerError; the breaker
		// trips once circuitBreakerThreshold tasks have failed.
		p.steps++
		if p.steps%2 == 0 {
			p.failed++
			p.updated = now
			f.event(s, fmt.Sprintf("(service %s) failed to launch a task: CannotPullContainerError: pull image manifest has been retried 5 time(s): %s: not found", s.name, img))
		}
		if p.failed >= circuitBreakerThreshold(s.desired) {
			p.rollout, p.updated = "FAILED", now
			p.reason = "ECS deployment circuit breaker: tasks failed to start."
		}
		return
	}
	// Promote pending tasks of the primary deployment.
	for _, t := range f.tasks {
		if t.service == s.name && t.cluster == s.cluster && t.lastStatus == "PENDING" && t.desiredStatus == "RUNNING" {
			if t.steps++; t.steps >= max(f.opts.PendingSteps, 1) {
				f.run(t)
			}
		}
	}
	// Stop tasks of older deployments once the primary has its tasks running.
	prim := f.serviceTasks(s, p.id)
	running := 0
	for _, t := range prim {
		if t.lastStatus == "RUNNING" {
			running++
		}
	}
	if running >= s.desired {
		for _, t := range f.serviceTasks(s, "") {
			if t.deployment != p.id {
				f.stop(t, "Task stopped by deployment.")
			}
		}
		s.deployments = s.deployments[:1]
	}
	// Match the desired count.
	prim = f.serviceTasks(s, p.id)
	for i := len(prim); i < s.desired; i++ {
		t := &task{id: f.id(), cluster: s.cluster, service: s.name, taskDef: p.taskDef, deployment: p.id,
			lastStatus: "PENDING", desiredStatus: "RUNNING", health: "UNKNOWN", created: now, execEnabled: s.execEnabled}
		t.arn = f.arn("ecs", "task/"+s.cluster+"/"+t.id)
		f.tasks[t.arn] = t
		if i == len(prim) {
			f.event(s, fmt.Sprintf("(service %s) has started %d tasks.", s.name, s.desired-len(prim)))
		}
	}
	for i := s.desired; i < len(prim); i++ {
		f.stop(prim[i], "Scaling activity initiated by (deployment "+p.id+")")
	}
	if len(s.deployments) == 1 && running == s.desired && len(prim) == s.desired && p.rollout == "IN_PROGRESS" {
		p.rollout, p.reason, p.updated = "COMPLETED", "ECS deployment "+p.id+" completed.", now
		f.event(s, fmt.Sprintf("(service %s) has reached a steady state.", s.name))
	}
}

// serviceTasks returns the live tasks of s (of deployment dep if not ""),
// oldest first.
func (f *Fake) serviceTasks(s *service, dep string) []*task {
	var out []*task
	for _, t := range f.tasks {
		if t.service == s.name && t.cluster == s.cluster && t.desiredStatus == "RUNNING" && (dep == "" || t.deployment == dep) {
			out = append(out, t)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].arn < out[j].arn })
	return out
}

func (f *Fake) stop(t *task, reason string) {
	t.desiredStatus, t.lastStatus, t.stopped, t.reason = "STOPPED", "STOPPED", f.now(), reason
}

// run starts t: resolves its environment (SSM read now) and logs the
// startup line.
func (f *Fake) run(t *task) {
	t.lastStatus, t.started = "RUNNING", f.now()
	td, e := f.lookupTD(t.taskDef)
	if e != nil {
		return
	}
	t.env = map[string]string{}
	c := list(td.raw, "containerDefinitions")[0].(map[string]any)
	for _, kv := range list(c, "environment") {
		m := kv.(map[string]any)
		t.env[str(m, "name")] = str(m, "value")
	}
	for _, sv := range list(c, "secrets") {
		m := sv.(map[string]any)
		if p := f.paramByRef(str(m, "valueFrom")); p != nil {
			t.env[str(m, "name")] = p.value
		}
	}
	if c["healthCheck"] != nil {
		t.health = "HEALTHY"
	}
	if lc := obj(c, "logConfiguration"); str(lc, "logDriver") == "awslogs" {
		o := obj(lc, "options")
		t.logGroup = str(o, "awslogs-group")
		t.logStream = str(o, "awslogs-stream-prefix") + "/" + str(c, "name") + "/" + t.id
		if f.opts.StartupLine != "" {
			f.appendLog(t.logGroup, t.logStream, f.opts.StartupLine)
		}
	}
}

func (f *Fake) deleteService(s *service) {
	for _, t := range f.serviceTasks(s, "") {
		f.stop(t, "Service deleted")
	}
	delete(f.svcs, s.cluster+"/"+s.name)
}

func (f *Fake) svcJSON(s *service, tags bool) map[string]any {
	var deps []any
	running, pending := 0, 0
	for _, d := range s.deployments {
		dr, dp := 0, 0
		for _, t := range f.serviceTasks(s, d.id) {
			if t.lastStatus == "RUNNING" {
				dr++
			} else {
				dp++
			}
		}
		running += dr
		pending += dp
		want := 0
		if d.status == "PRIMARY" {
			want = s.desired
		}
		deps = append(deps, map[string]any{"id": d.id, "status": d.status, "taskDefinition": d.taskDef,
			"desiredCount": want, "runningCount": dr, "pendingCount": dp, "failedTasks": d.failed,
			"createdAt": epoch(d.created), "updatedAt": epoch(d.updated), "launchType": s.launchType,
			"rolloutState": d.rollout, "rolloutStateReason": d.reason})
	}
	events := make([]any, 0, len(s.events))
	for _, e := range s.events {
		events = append(events, e)
	}
	out := map[string]any{"serviceArn": s.arn, "serviceName": s.name, "clusterArn": f.arn("ecs", "cluster/"+s.cluster),
		"status": s.status, "desiredCount": s.desired, "runningCount": running, "pendingCount": pending,
		"launchType": s.launchType, "taskDefinition": s.taskDef, "deployments": orEmpty(deps), "events": events,
		"createdAt": epoch(s.created), "enableExecuteCommand": s.execEnabled}
	if tags {
		out["tags"] = orEmpty(s.tags)
	}
	return out
}

func (f *Fake) taskJSON(t *task) map[string]any {
	out := map[string]any{"taskArn": t.arn, "clusterArn": f.arn("ecs", "cluster/"+t.cluster),
		"taskDefinitionArn": t.taskDef, "lastStatus": t.lastStatus, "desiredStatus": t.desiredStatus,
		"healthStatus": t.health, "group": "service:" + t.service, "createdAt": epoch(t.created),
		"enableExecuteCommand": t.execEnabled}
	c := map[string]any{"name": t.service, "lastStatus": t.lastStatus, "healthStatus": t.health, "containerArn": f.containerARN(t)}
	if t.execEnabled {
		// The ECS Exec agent runs once the task does.
		agent := map[string]any{"name": "ExecuteCommandAgent", "lastStatus": f.execAgentStatus(t)}
		if !t.started.IsZero() {
			agent["lastStartedAt"] = epoch(t.started)
		}
		c["managedAgents"] = []any{agent}
	}
	out["containers"] = []any{c}
	if !t.started.IsZero() {
		out["startedAt"] = epoch(t.started)
	}
	if !t.stopped.IsZero() {
		out["stoppedAt"] = epoch(t.stopped)
		out["stoppedReason"] = t.reason
	}
	return out
}

// ServiceState is the fake's own account of a service, for harnesses.
type ServiceState struct {
	Exists       bool
	Desired      int
	RunningTasks []string // task ids, lastStatus RUNNING
	TaskDef      string
	Tags         map[string]string
}

// Service reports a service's state directly from the fake's memory,
// without reconciling.
func (f *Fake) Service(cluster, name string) ServiceState {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := f.svcs[cluster+"/"+name]
	if s == nil {
		return ServiceState{}
	}
	st := ServiceState{Exists: true, Desired: s.desired, TaskDef: s.taskDef, Tags: map[string]string{}}
	for _, t := range f.serviceTasks(s, "") {
		if t.lastStatus == "RUNNING" {
			st.RunningTasks = append(st.RunningTasks, t.id)
		}
	}
	for _, tg := range s.tags {
		m, _ := tg.(map[string]any)
		st.Tags[str(m, "key")] = str(m, "value")
	}
	return st
}

// TaskEnv returns the environment (plain and secret) one running task of
// the service saw when it started: what the workload reads.
func (f *Fake) TaskEnv(cluster, name string) []map[string]string {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := f.svcs[cluster+"/"+name]
	if s == nil {
		return nil
	}
	var out []map[string]string
	for _, t := range f.serviceTasks(s, "") {
		if t.lastStatus == "RUNNING" {
			out = append(out, t.env)
		}
	}
	return out
}

// TaskDefinition returns a registered task definition as registered.
func (f *Fake) TaskDefinition(arn string) map[string]any {
	f.mu.Lock()
	defer f.mu.Unlock()
	td, e := f.lookupTD(arn)
	if e != nil {
		return nil
	}
	return td.raw
}

// EmitLog makes every running task of the service log text.
func (f *Fake) EmitLog(cluster, name, text string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := f.svcs[cluster+"/"+name]
	if s == nil {
		return
	}
	for _, t := range f.serviceTasks(s, "") {
		if t.lastStatus == "RUNNING" && t.logGroup != "" {
			f.appendLog(t.logGroup, t.logStream, text)
		}
	}
}

// DeleteService removes a service and stops its tasks.
func (f *Fake) DeleteService(cluster, name string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if s := f.svcs[cluster+"/"+name]; s != nil {
		f.deleteService(s)
	}
}
