// Package fakegcp is an in-process Google Cloud for the gcp provider's
// tests: gRPC servers on a bufconn listener implementing the generated
// server interfaces of Cloud Run Admin v2 (Services, Revisions and the
// long-running Operations), Secret Manager, Cloud Monitoring
// (ListTimeSeries), Cloud Logging (ListLogEntries, TailLogEntries,
// WriteLogEntries) and the GKE cluster manager (GetCluster, container.go).
// The real client libraries connect to it through option.WithGRPCConn.
// OAuthServer (oauth.go) is a Google OAuth 2.0 token endpoint for the
// service-account (JWT bearer) flow, over HTTP.
//
// It keeps its state in memory where tests read it directly (Observe,
// ReadConfig, EmitLog) instead of through the provider.
//
// Behaviour, as documented for the real services and pinned in
// fakegcp_test.go:
//
//   - Create/UpdateService return a completed long-running operation
//     whose response is the service; the service then reconciles over
//     successive GetService calls (Steps, default 2): terminalCondition
//     "Ready" goes CONDITION_RECONCILING → CONDITION_SUCCEEDED,
//     reconciling true → false, latestReadyRevision catches up with
//     latestCreatedRevision and trafficStatuses sends 100% to LATEST.
//   - A template change creates a revision "<service>-<NNNNN>-<xyz>"; a
//     change of service-level scaling or labels alone does not.
//   - An image listed in BadImages makes the revision fail: its Ready
//     condition and the service's terminal condition become
//     CONDITION_FAILED with reason CONTAINER_MISSING; the previous ready
//     revision keeps serving.
//   - Instances: manualInstanceCount instances of the latest ready
//     revision run (Cloud Run exposes no instance list; the fake keeps
//     ids for log labels and Observe).
//   - GetCluster returns the clusters added with AddCluster by their
//     resource name projects/*/locations/*/clusters/* (NOT_FOUND for
//     others, INVALID_ARGUMENT for a malformed name).
//   - Errors injected with Fail are returned by the next call of the
//     named method (a queued nil lets that call through); FailOperation
//     makes the next Create/UpdateService operation finish with an error
//     status; with BadImageFailsOperation a bad image fails the
//     operation too, the service keeping the failed condition.
//   - Stored templates get Cloud Run's defaults filled in: port name
//     http1, CPU limits in millicores ("1" → "1000m"); port names other
//     than http1 and h2c are INVALID_ARGUMENT.
//   - BreakTails ends open TailLogEntries streams (EOF or an error);
//     SuppressTail replaces the next tail batch by SuppressionInfo;
//     BeforeTail runs a hook as a tail stream starts.
package fakegcp

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"cloud.google.com/go/container/apiv1/containerpb"
	"cloud.google.com/go/iam/apiv1/iampb"
	"cloud.google.com/go/logging/apiv2/loggingpb"
	"cloud.google.com/go/longrunning/autogen/longrunningpb"
	"cloud.google.com/go/monitoring/apiv3/v2/monitoringpb"
	"cloud.google.com/go/run/apiv2/runpb"
	"cloud.google.com/go/secretmanager/apiv1/secretmanagerpb"
	"google.golang.org/genproto/googleapis/api/distribution"
	"google.golang.org/genproto/googleapis/api/monitoredres"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Server is the fake. Create it with New; Close it when done.
type Server struct {
	// Steps is how many GetService calls a new revision spends
	// reconciling before it settles (default 2).
	Steps int
	// StartupLine is logged by every instance when it starts.
	StartupLine string
	// BadImageFailsOperation makes Create/UpdateService with a bad image
	// (BadImage) settle at once and finish the long-running operation
	// with an error, as Cloud Run does when the new revision cannot
	// become ready; the service keeps the failed terminal condition.
	BadImageFailsOperation bool
	// BeforeTail, if set, runs when a TailLogEntries stream starts,
	// before the stream takes its starting position (tests use it to
	// write entries in the gap between a history read and the tail).
	BeforeTail func()
	// OperationPolls is how many GetOperation calls a long-running
	// operation answers not done before it completes (default 0: done at
	// once, as the method's own answer).
	OperationPolls int
	// LenientOutputOnly lets requests carry OUTPUT_ONLY fields, which the
	// fake otherwise refuses (contract.go).
	LenientOutputOnly bool
	// SuppressEvery makes every TailLogEntries response that carries
	// entries also report suppressed entries (RATE_LIMIT), as a chatty
	// service's tail does.
	SuppressEvery bool
	// LogReadQuota is how many ListLogEntries calls a project may make in
	// a minute (default 60: "Read requests per minute" of Cloud Logging,
	// cloud.google.com/logging/quotas, the quota_limit_value "60" in
	// RESOURCE_EXHAUSTED errors); more are RESOURCE_EXHAUSTED.
	LogReadQuota int
	// MaxTailSessions is how many TailLogEntries streams may be open at
	// once (default 10: "Number of open live-tailing sessions: 10 per
	// Google Cloud project", cloud.google.com/logging/quotas); another is
	// RESOURCE_EXHAUSTED.
	MaxTailSessions int
	// MetricLatency is how old the newest Cloud Monitoring point is
	// (default 180s, the documented visibility delay of Cloud Run's
	// metrics; see ListTimeSeries).
	MetricLatency time.Duration
	// DefaultServiceAccount is the identity of revisions whose template
	// names no service account: on Cloud Run, the project's Compute
	// Engine default service account (cloud.google.com/run/docs/
	// securing/service-identity). Default
	// "123456789012-compute@developer.gserviceaccount.com".
	DefaultServiceAccount string
	// ProjectSecretAccessors are IAM members ("serviceAccount:<email>")
	// holding roles/secretmanager.secretAccessor on the whole project;
	// others need it on each secret (SetIamPolicy).
	ProjectSecretAccessors []string

	lis  *bufconn.Listener
	srv  *grpc.Server
	conn *grpc.ClientConn

	mu        sync.Mutex
	badImages map[string]string // image → message
	services  map[string]*service
	secrets   map[string]*secret
	ops       map[string]*longrunningpb.Operation
	logs      []*loggingpb.LogEntry
	logCond   chan struct{} // closed and replaced on every new entry
	fail      map[string][]error
	failOp    *status.Status
	calls     map[string]int
	nextOp    int
	requests  int64
	clusters  map[string]*containerpb.Cluster // resource name → cluster
	tailGen   int                             // bumped by BreakTails
	suppress  bool                            // SuppressTail
	tailErr   error
	// opsPending: operations still answering not done, with their
	// remaining polls and final result.
	opsPending map[string]*pendingOp
	violations []string    // requests the contract check refused (contract.go)
	logReads   []time.Time // ListLogEntries calls of the last minute
	tails      int         // open TailLogEntries streams
}

type pendingOp struct {
	polls int
	final *longrunningpb.Operation
}

type service struct {
	svc       *runpb.Service
	revs      map[string]*revision // short name → revision
	order     []string
	pending   string // revision reconciling
	steps     int
	instances []string // ids of running instances
	instRev   string
	servedGen int64 // generation of the last successful reconciliation
}

type revision struct {
	rev *runpb.Revision
}

type secret struct {
	s        *secretmanagerpb.Secret
	versions [][]byte
	policy   *iampb.Policy
}

// New starts the fake.
func New() *Server {
	f := &Server{Steps: 2, StartupLine: "container started", MetricLatency: 180 * time.Second, LogReadQuota: 60, MaxTailSessions: 10, DefaultServiceAccount: "123456789012-compute@developer.gserviceaccount.com", lis: bufconn.Listen(1 << 20),
		badImages: map[string]string{}, services: map[string]*service{}, secrets: map[string]*secret{},
		ops: map[string]*longrunningpb.Operation{}, fail: map[string][]error{}, calls: map[string]int{}, logCond: make(chan struct{})}
	f.srv = grpc.NewServer(grpc.UnaryInterceptor(f.contractInterceptor))
	runpb.RegisterServicesServer(f.srv, &runServices{f: f})
	runpb.RegisterRevisionsServer(f.srv, &runRevisions{f: f})
	longrunningpb.RegisterOperationsServer(f.srv, &operations{f: f})
	secretmanagerpb.RegisterSecretManagerServiceServer(f.srv, &secretManager{f: f})
	monitoringpb.RegisterMetricServiceServer(f.srv, &metricService{f: f})
	loggingpb.RegisterLoggingServiceV2Server(f.srv, &loggingService{f: f})
	containerpb.RegisterClusterManagerServer(f.srv, &clusterManager{f: f})
	go func() { _ = f.srv.Serve(f.lis) }()
	conn, err := grpc.NewClient("passthrough:///bufnet",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return f.lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		panic(err)
	}
	f.conn = conn
	return f
}

// Conn is a client connection to the fake, for option.WithGRPCConn.
func (f *Server) Conn() *grpc.ClientConn { return f.conn }

// Close stops the fake.
func (f *Server) Close() {
	_ = f.conn.Close()
	f.srv.Stop()
}

// BadImage makes revisions with image fail with message.
func (f *Server) BadImage(image, message string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.badImages[image] = message
}

// Fail makes the next call of method ("GetService", "AddSecretVersion"...)
// return err.
func (f *Server) Fail(method string, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fail[method] = append(f.fail[method], err)
}

// FailOperation makes the next Create/UpdateService operation complete
// with st as its error.
func (f *Server) FailOperation(st *status.Status) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failOp = st
}

// BreakTails ends every open TailLogEntries stream with err (nil: a clean
// end, io.EOF at the client).
func (f *Server) BreakTails(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.tailGen++
	f.tailErr = err
	close(f.logCond)
	f.logCond = make(chan struct{})
}

// SuppressTail makes the next TailLogEntries batch (of any stream) be
// dropped and reported only as SuppressionInfo (reason RATE_LIMIT), as
// Cloud Logging does when a tail exceeds its rate.
func (f *Server) SuppressTail() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.suppress = true
}

// OpenTails is how many TailLogEntries streams are open.
func (f *Server) OpenTails() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.tails
}

// Calls returns how often method was called.
func (f *Server) Calls(method string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[method]
}

// enter counts a call and returns an injected error; f.mu must be held.
func (f *Server) enter(method string) error {
	f.calls[method]++
	if errs := f.fail[method]; len(errs) > 0 {
		f.fail[method] = errs[1:]
		return errs[0]
	}
	return nil
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func shortName(full string) string {
	if i := strings.LastIndex(full, "/"); i >= 0 {
		return full[i+1:]
	}
	return full
}

// Observation is what the fake runs for a service.
type Observation struct {
	Running     int
	Revision    string   // serving revision, short name
	InstanceIDs []string // the fake's own instance ids
}

// Observe reports the instances the fake runs for service (short name).
func (f *Server) Observe(name string) Observation {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, s := range f.services {
		if shortName(s.svc.Name) == name {
			return Observation{Running: len(s.instances), Revision: s.instRev, InstanceIDs: append([]string(nil), s.instances...)}
		}
	}
	return Observation{}
}

// Service returns a copy of the stored service resource, or nil.
func (f *Server) Service(name string) *runpb.Service {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, s := range f.services {
		if shortName(s.svc.Name) == name {
			return proto.Clone(s.svc).(*runpb.Service)
		}
	}
	return nil
}

// ReadConfig returns the value of env var key as the serving revision's
// container sees it, resolving Secret Manager references.
func (f *Server) ReadConfig(name, key string) (string, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var s *service
	for _, x := range f.services {
		if shortName(x.svc.Name) == name {
			s = x
		}
	}
	if s == nil || s.instRev == "" {
		return "", false, fmt.Errorf("service %s runs no revision", name)
	}
	r := s.revs[s.instRev]
	for _, c := range r.rev.Containers {
		for _, e := range c.Env {
			if e.Name != key {
				continue
			}
			if ref := e.GetValueSource().GetSecretKeyRef(); ref != nil {
				v, err := f.accessLocked(ref.Secret, ref.Version)
				return string(v), err == nil, err
			}
			return e.GetValue(), true, nil
		}
	}
	return "", false, nil
}

// EmitLog makes every running instance of service print text.
func (f *Server) EmitLog(name, text string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, s := range f.services {
		if shortName(s.svc.Name) == name {
			for _, id := range s.instances {
				f.logLocked(s, id, text)
			}
		}
	}
}

func (f *Server) logLocked(s *service, instance, text string) {
	parts := strings.Split(s.svc.Name, "/") // projects/p/locations/r/services/s
	f.logs = append(f.logs, &loggingpb.LogEntry{
		LogName:  "projects/" + parts[1] + "/logs/run.googleapis.com%2Fstdout",
		InsertId: randHex(8),
		Resource: &monitoredres.MonitoredResource{Type: "cloud_run_revision", Labels: map[string]string{
			"project_id": parts[1], "location": parts[3], "service_name": parts[5], "revision_name": s.instRev, "configuration_name": parts[5]}},
		Timestamp:        timestamppb.Now(),
		Labels:           map[string]string{"instanceId": instance},
		Payload:          &loggingpb.LogEntry_TextPayload{TextPayload: text},
		ReceiveTimestamp: timestamppb.Now(),
	})
	close(f.logCond)
	f.logCond = make(chan struct{})
}

// settleLocked moves a reconciling service one step; f.mu must be held.
func (f *Server) settleLocked(s *service) {
	if s.pending == "" {
		f.runInstancesLocked(s)
		return
	}
	if s.steps > 0 {
		s.steps--
		return
	}
	r := s.revs[s.pending]
	s.pending = ""
	now := timestamppb.Now()
	img := r.rev.Containers[0].Image
	msg, bad := f.badImages[img]
	reason := runpb.Condition_CONTAINER_MISSING
	if !bad {
		if denied := f.secretDeniedLocked(r.rev); denied != "" {
			msg, bad, reason = denied, true, runpb.Condition_COMMON_REASON_UNDEFINED
		}
	}
	if bad {
		fc := &runpb.Condition{Type: "Ready", State: runpb.Condition_CONDITION_FAILED, LastTransitionTime: now,
			Message: msg, Reasons: &runpb.Condition_Reason{Reason: reason}}
		r.rev.Conditions = []*runpb.Condition{fc}
		r.rev.Reconciling = false
		s.svc.TerminalCondition = &runpb.Condition{Type: "Ready", State: runpb.Condition_CONDITION_FAILED, LastTransitionTime: now,
			Message: fmt.Sprintf("Revision '%s' is not ready and cannot serve traffic. %s", r.rev.Name[strings.LastIndex(r.rev.Name, "/")+1:], msg),
			Reasons: &runpb.Condition_Reason{Reason: reason}}
	} else {
		r.rev.Conditions = []*runpb.Condition{{Type: "Ready", State: runpb.Condition_CONDITION_SUCCEEDED, LastTransitionTime: now}}
		r.rev.Reconciling = false
		s.svc.LatestReadyRevision = r.rev.Name
		s.svc.TerminalCondition = &runpb.Condition{Type: "Ready", State: runpb.Condition_CONDITION_SUCCEEDED, LastTransitionTime: now}
		s.svc.TrafficStatuses = []*runpb.TrafficTargetStatus{{Type: runpb.TrafficTargetAllocationType_TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST, Percent: 100, Revision: shortName(r.rev.Name)}}
	}
	s.svc.Reconciling = false
	// service.proto, Service.reconciling: "If reconciliation failed,
	// traffic_statuses, observed_generation, and latest_ready_revision
	// will have the state of the last serving revision, or empty for
	// newly created Services."
	if bad {
		s.svc.ObservedGeneration = s.servedGen
	} else {
		s.svc.ObservedGeneration, s.servedGen = s.svc.Generation, s.svc.Generation
	}
	f.runInstancesLocked(s)
}

// secretDeniedLocked returns why rev cannot start when its service
// account may not read a secret its env refers to, else "". Cloud Run
// resolves secretKeyRef as the revision's service account and fails the
// revision without roles/secretmanager.secretAccessor on the secret or
// the project (cloud.google.com/run/docs/configuring/services/secrets,
// "Grant the service identity access to the secret"; the message follows
// the one Cloud Run reports).
func (f *Server) secretDeniedLocked(rev *runpb.Revision) string {
	sa := rev.ServiceAccount
	if sa == "" {
		sa = f.DefaultServiceAccount
	}
	member := "serviceAccount:" + sa
	if slices.Contains(f.ProjectSecretAccessors, member) {
		return ""
	}
	for _, c := range rev.Containers {
		for _, e := range c.Env {
			ref := e.GetValueSource().GetSecretKeyRef()
			if ref == nil {
				continue
			}
			s := f.findSecretLocked(ref.Secret)
			if s == nil || !s.grants(member) {
				return fmt.Sprintf("spec.template.spec.containers[0].env.valueFrom.secretKeyRef.name: Permission denied on secret: %s/versions/%s for Revision service account %s. The service account used must be granted the 'Secret Manager Secret Accessor' role (roles/secretmanager.secretAccessor) at the secret, project or higher level.", ref.Secret, ref.Version, sa)
			}
		}
	}
	return ""
}

// grants reports whether the secret's policy gives member the accessor role.
func (s *secret) grants(member string) bool {
	for _, b := range s.policy.GetBindings() {
		if (b.Role == "roles/secretmanager.secretAccessor" || b.Role == "roles/owner") && slices.Contains(b.Members, member) {
			return true
		}
	}
	return false
}

// findSecretLocked finds a secret by full name or bare id.
func (f *Server) findSecretLocked(name string) *secret {
	if s, ok := f.secrets[name]; ok {
		return s
	}
	for n, x := range f.secrets {
		if shortName(n) == name {
			return x
		}
	}
	return nil
}

// runInstancesLocked runs manualInstanceCount instances of the latest
// ready revision, replacing all of them when the revision changed.
func (f *Server) runInstancesLocked(s *service) {
	rev := shortName(s.svc.LatestReadyRevision)
	want := 0
	if rev != "" {
		sc := s.svc.GetScaling()
		if sc.GetScalingMode() == runpb.ServiceScaling_MANUAL && sc.ManualInstanceCount != nil {
			want = int(sc.GetManualInstanceCount())
		} else {
			want = int(sc.GetMinInstanceCount())
		}
	}
	if rev != s.instRev {
		s.instances, s.instRev = nil, rev
	}
	for len(s.instances) > want {
		s.instances = s.instances[:len(s.instances)-1]
	}
	for len(s.instances) < want {
		id := "00" + randHex(12)
		s.instances = append(s.instances, id)
		if f.StartupLine != "" {
			f.logLocked(s, id, f.StartupLine)
		}
	}
}

var (
	reName = regexp.MustCompile(`^projects/[^/]+/locations/[^/]+/services/([a-z]([-a-z0-9]{0,47}[a-z0-9])?)$`)
)

// applyLocked stores svc as the new desired state of s.
func (f *Server) applyLocked(s *service, in *runpb.Service) {
	prev := s.svc
	in = proto.Clone(in).(*runpb.Service)
	now := timestamppb.Now()
	in.Generation = 1
	in.CreateTime = now
	if prev != nil {
		in.Generation = prev.Generation + 1
		in.CreateTime = prev.CreateTime
		in.Uid = prev.Uid
		in.LatestCreatedRevision, in.LatestReadyRevision = prev.LatestCreatedRevision, prev.LatestReadyRevision
		in.TrafficStatuses, in.TerminalCondition = prev.TrafficStatuses, prev.TerminalCondition
		in.ObservedGeneration = prev.ObservedGeneration
	} else {
		in.Uid = randHex(16)
	}
	in.UpdateTime = now
	in.Etag = strconv.Quote(randHex(6))
	if len(in.Traffic) == 0 {
		in.Traffic = []*runpb.TrafficTarget{{Type: runpb.TrafficTargetAllocationType_TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST, Percent: 100}}
	}
	fillDefaults(in.Template)
	templateChanged := prev == nil || !proto.Equal(prev.Template, in.Template)
	if in.Template != nil {
		in.Template.Revision = ""
	}
	s.svc = in
	if !templateChanged {
		s.svc.ObservedGeneration, s.servedGen = s.svc.Generation, s.svc.Generation
		f.runInstancesLocked(s)
		return
	}
	short := fmt.Sprintf("%s-%05d-%s", shortName(in.Name), len(s.order)+1, randHex(2)[:3])
	revName := strings.Replace(in.Name, "/services/"+shortName(in.Name), "/services/"+shortName(in.Name)+"/revisions/"+short, 1)
	tmpl := in.GetTemplate()
	rev := &runpb.Revision{Name: revName, Uid: randHex(16), Generation: 1, Labels: tmpl.GetLabels(), Annotations: tmpl.GetAnnotations(), ServiceAccount: tmpl.GetServiceAccount(),
		CreateTime: now, Service: shortName(in.Name), Containers: tmpl.GetContainers(), Scaling: tmpl.GetScaling(), Reconciling: true,
		Conditions: []*runpb.Condition{{Type: "Ready", State: runpb.Condition_CONDITION_RECONCILING, LastTransitionTime: now}}}
	s.revs[short] = &revision{rev: rev}
	s.order = append(s.order, short)
	s.pending, s.steps = short, f.Steps
	in.LatestCreatedRevision = revName
	in.Reconciling = true
	in.TerminalCondition = &runpb.Condition{Type: "Ready", State: runpb.Condition_CONDITION_RECONCILING, LastTransitionTime: now,
		Message: "Deploying revision " + short}
}

// fillDefaults fills in what Cloud Run fills in on a stored template:
// the default port name http1 and CPU limits in millicores ("1" →
// "1000m").
func fillDefaults(t *runpb.RevisionTemplate) {
	for _, c := range t.GetContainers() {
		for _, p := range c.Ports {
			if p.Name == "" {
				p.Name = "http1"
			}
		}
		if cpu, ok := c.GetResources().GetLimits()["cpu"]; ok && !strings.HasSuffix(cpu, "m") {
			if n, err := strconv.ParseFloat(cpu, 64); err == nil {
				c.Resources.Limits["cpu"] = strconv.Itoa(int(n*1000)) + "m"
			}
		}
	}
}

// failBadImageLocked settles s at once when its pending revision has a
// bad image and BadImageFailsOperation is set, and makes the operation
// about to be created fail.
func (f *Server) failBadImageLocked(s *service) {
	if !f.BadImageFailsOperation || s.pending == "" {
		return
	}
	if _, bad := f.badImages[s.revs[s.pending].rev.Containers[0].Image]; !bad {
		return
	}
	s.steps = 0
	f.settleLocked(s)
	f.failOp = status.New(codes.FailedPrecondition, s.svc.TerminalCondition.GetMessage())
}

func (f *Server) operationLocked(method string, svc *runpb.Service) (*longrunningpb.Operation, error) {
	f.nextOp++
	op := &longrunningpb.Operation{Name: fmt.Sprintf("%s/operations/op-%d", svc.Name[:strings.Index(svc.Name, "/services/")], f.nextOp), Done: true}
	if f.failOp != nil {
		op.Result = &longrunningpb.Operation_Error{Error: f.failOp.Proto()}
		f.failOp = nil
	} else {
		resp, err := anypb.New(svc)
		if err != nil {
			return nil, err
		}
		op.Result = &longrunningpb.Operation_Response{Response: resp}
	}
	meta, _ := anypb.New(svc)
	op.Metadata = meta
	f.ops[op.Name] = op
	if f.OperationPolls > 0 {
		if f.opsPending == nil {
			f.opsPending = map[string]*pendingOp{}
		}
		f.opsPending[op.Name] = &pendingOp{polls: f.OperationPolls, final: op}
		running := &longrunningpb.Operation{Name: op.Name, Metadata: meta}
		f.ops[op.Name] = running
		return proto.Clone(running).(*longrunningpb.Operation), nil
	}
	return op, nil
}

type runServices struct {
	runpb.UnimplementedServicesServer
	f *Server
}

func (r *runServices) CreateService(_ context.Context, req *runpb.CreateServiceRequest) (*longrunningpb.Operation, error) {
	f := r.f
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.enter("CreateService"); err != nil {
		return nil, err
	}
	name := req.Parent + "/services/" + req.ServiceId
	if !reName.MatchString(name) {
		return nil, status.Errorf(codes.InvalidArgument, "service id %q: must be a DNS label of at most 49 characters", req.ServiceId)
	}
	if _, dup := f.services[name]; dup {
		return nil, status.Errorf(codes.AlreadyExists, "Resource '%s' already exists.", req.ServiceId)
	}
	if req.Service == nil {
		return nil, status.Error(codes.InvalidArgument, "service is required")
	}
	// Documented: in CreateServiceRequest, service.name is ignored and
	// composed from parent and service_id.
	if err := validateService(req.Service); err != nil {
		return nil, err
	}
	if f.failOp != nil {
		// The operation fails; the service is not created.
		svc := proto.Clone(req.Service).(*runpb.Service)
		svc.Name = name
		return f.operationLocked("CreateService", svc)
	}
	s := &service{revs: map[string]*revision{}}
	in := proto.Clone(req.Service).(*runpb.Service)
	in.Name = name
	f.applyLocked(s, in)
	f.services[name] = s
	f.failBadImageLocked(s)
	return f.operationLocked("CreateService", s.svc)
}

// Google Cloud labels (cloud.google.com/run/docs/configuring/labels: "Only
// valid Google Cloud labels can be used on Cloud Run"; the rules on
// cloud.google.com/resource-manager/docs/labels-overview: keys start with
// a lowercase letter; keys and values hold lowercase letters, digits, '_'
// and '-', at most 63 characters).
var (
	reLabelKey   = regexp.MustCompile(`^[a-z][a-z0-9_-]{0,62}$`)
	reLabelValue = regexp.MustCompile(`^[a-z0-9_-]{0,63}$`)
)

func validateLabels(path string, labels map[string]string) error {
	for k, v := range labels {
		if !reLabelKey.MatchString(k) || !reLabelValue.MatchString(v) {
			return status.Errorf(codes.InvalidArgument, "%s: %q=%q is not a valid Google Cloud label (keys [a-z][a-z0-9_-]{0,62}, values [a-z0-9_-]{0,63})", path, k, v)
		}
	}
	return nil
}

// validateProbe applies the limits of google/cloud/run/v2/k8s.min.proto,
// message Probe: initial_delay_seconds and period_seconds at most 240 for
// a startup probe and 3600 for a liveness probe; timeout_seconds 1..3600
// and not above period_seconds ("Must be greater or equal than
// timeout_seconds"); defaults period 10, timeout 1. Liveness probes are
// HTTP or gRPC only ("You can configure HTTP, TCP, and gRPC startup
// probes, along with HTTP and gRPC liveness probes",
// cloud.google.com/run/docs/configuring/healthchecks).
func validateProbe(path string, p *runpb.Probe, startup bool) error {
	if p == nil {
		return nil
	}
	maxi := int32(3600)
	if startup {
		maxi = 240
	}
	if !startup && p.GetTcpSocket() != nil {
		return status.Errorf(codes.InvalidArgument, "%s.tcpSocket: liveness probes support HTTP and gRPC only", path)
	}
	period, timeout := p.PeriodSeconds, p.TimeoutSeconds
	if period == 0 {
		period = 10
	}
	if timeout == 0 {
		timeout = 1
	}
	switch {
	case p.InitialDelaySeconds < 0 || p.InitialDelaySeconds > maxi:
		return status.Errorf(codes.InvalidArgument, "%s.initialDelaySeconds: must be between 0 and %d", path, maxi)
	case period < 1 || period > maxi:
		return status.Errorf(codes.InvalidArgument, "%s.periodSeconds: must be between 1 and %d", path, maxi)
	case timeout < 1 || timeout > 3600:
		return status.Errorf(codes.InvalidArgument, "%s.timeoutSeconds: must be between 1 and 3600", path)
	case timeout > period:
		return status.Errorf(codes.InvalidArgument, "%s.timeoutSeconds: must not exceed periodSeconds", path)
	case p.FailureThreshold < 0:
		return status.Errorf(codes.InvalidArgument, "%s.failureThreshold: must be at least 1", path)
	}
	return nil
}

func validateService(svc *runpb.Service) error {
	if err := validateLabels("service.labels", svc.Labels); err != nil {
		return err
	}
	if err := validateLabels("service.template.labels", svc.GetTemplate().GetLabels()); err != nil {
		return err
	}
	cs := svc.GetTemplate().GetContainers()
	if len(cs) == 0 {
		return status.Error(codes.InvalidArgument, "template.containers: at least one container is required")
	}
	for _, c := range cs {
		if err := validateProbe("template.containers.startupProbe", c.StartupProbe, true); err != nil {
			return err
		}
		if err := validateProbe("template.containers.livenessProbe", c.LivenessProbe, false); err != nil {
			return err
		}
		if c.Image == "" {
			return status.Error(codes.InvalidArgument, "template.containers.image: required")
		}
		if len(c.Ports) > 1 {
			return status.Error(codes.InvalidArgument, "template.containers.ports: at most one port")
		}
		for _, p := range c.Ports {
			if p.Name != "" && p.Name != "http1" && p.Name != "h2c" {
				return status.Errorf(codes.InvalidArgument, "template.containers.ports.name %q: must be http1 or h2c", p.Name)
			}
		}
	}
	return nil
}

func (r *runServices) GetService(_ context.Context, req *runpb.GetServiceRequest) (*runpb.Service, error) {
	f := r.f
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.enter("GetService"); err != nil {
		return nil, err
	}
	s, ok := f.services[req.Name]
	if !ok {
		return nil, status.Errorf(codes.NotFound, "Resource '%s' of kind 'SERVICE' in region '%s' in project '%s' does not exist.",
			shortName(req.Name), regionOf(req.Name), projectOf(req.Name))
	}
	f.settleLocked(s)
	return proto.Clone(s.svc).(*runpb.Service), nil
}

func regionOf(name string) string {
	p := strings.Split(name, "/")
	if len(p) > 3 {
		return p[3]
	}
	return ""
}

func projectOf(name string) string {
	p := strings.Split(name, "/")
	if len(p) > 1 {
		return p[1]
	}
	return ""
}

func (r *runServices) ListServices(_ context.Context, req *runpb.ListServicesRequest) (*runpb.ListServicesResponse, error) {
	f := r.f
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.enter("ListServices"); err != nil {
		return nil, err
	}
	out := &runpb.ListServicesResponse{}
	var names []string
	for n := range f.services {
		if strings.HasPrefix(n, req.Parent+"/services/") {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	for _, n := range names {
		out.Services = append(out.Services, proto.Clone(f.services[n].svc).(*runpb.Service))
	}
	return out, nil
}

func (r *runServices) UpdateService(_ context.Context, req *runpb.UpdateServiceRequest) (*longrunningpb.Operation, error) {
	f := r.f
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.enter("UpdateService"); err != nil {
		return nil, err
	}
	s, ok := f.services[req.GetService().GetName()]
	if !ok {
		return nil, status.Errorf(codes.NotFound, "Resource '%s' of kind 'SERVICE' does not exist.", shortName(req.GetService().GetName()))
	}
	// Service.etag (OPTIONAL in cloud.google.com/go/run v1.25.0's
	// descriptor): "A system-generated fingerprint for this version of
	// the resource. May be used to detect modification conflict during
	// updates." The fake enforces it; whether Cloud Run does is a known
	// unknown (see the gcp package doc).
	if req.Service.Etag != "" && req.Service.Etag != s.svc.Etag {
		return nil, status.Error(codes.Aborted, "etag mismatch: the service changed since it was read")
	}
	if err := checkImmutable(req.Service.ProtoReflect(), s.svc.ProtoReflect(), "service"); err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	if err := validateService(req.Service); err != nil {
		return nil, err
	}
	if f.failOp != nil {
		return f.operationLocked("UpdateService", s.svc)
	}
	f.applyLocked(s, req.Service)
	f.failBadImageLocked(s)
	return f.operationLocked("UpdateService", s.svc)
}

func (r *runServices) DeleteService(_ context.Context, req *runpb.DeleteServiceRequest) (*longrunningpb.Operation, error) {
	f := r.f
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.enter("DeleteService"); err != nil {
		return nil, err
	}
	s, ok := f.services[req.Name]
	if !ok {
		return nil, status.Errorf(codes.NotFound, "Resource '%s' of kind 'SERVICE' does not exist.", shortName(req.Name))
	}
	delete(f.services, req.Name)
	return f.operationLocked("DeleteService", s.svc)
}

type runRevisions struct {
	runpb.UnimplementedRevisionsServer
	f *Server
}

func (r *runRevisions) GetRevision(_ context.Context, req *runpb.GetRevisionRequest) (*runpb.Revision, error) {
	f := r.f
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.enter("GetRevision"); err != nil {
		return nil, err
	}
	for _, s := range f.services {
		if rv, ok := s.revs[shortName(req.Name)]; ok && rv.rev.Name == req.Name {
			return proto.Clone(rv.rev).(*runpb.Revision), nil
		}
	}
	return nil, status.Errorf(codes.NotFound, "Resource '%s' of kind 'REVISION' does not exist.", shortName(req.Name))
}

func (r *runRevisions) ListRevisions(_ context.Context, req *runpb.ListRevisionsRequest) (*runpb.ListRevisionsResponse, error) {
	f := r.f
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.enter("ListRevisions"); err != nil {
		return nil, err
	}
	s, ok := f.services[req.Parent]
	if !ok {
		return nil, status.Errorf(codes.NotFound, "Resource '%s' of kind 'SERVICE' does not exist.", shortName(req.Parent))
	}
	out := &runpb.ListRevisionsResponse{}
	for i := len(s.order) - 1; i >= 0; i-- { // newest first
		out.Revisions = append(out.Revisions, proto.Clone(s.revs[s.order[i]].rev).(*runpb.Revision))
	}
	return out, nil
}

type operations struct {
	longrunningpb.UnimplementedOperationsServer
	f *Server
}

func (o *operations) GetOperation(_ context.Context, req *longrunningpb.GetOperationRequest) (*longrunningpb.Operation, error) {
	f := o.f
	f.mu.Lock()
	defer f.mu.Unlock()
	op, ok := f.ops[req.Name]
	if !ok {
		return nil, status.Errorf(codes.NotFound, "operation %s not found", req.Name)
	}
	f.calls["GetOperation"]++
	if p := f.opsPending[req.Name]; p != nil {
		if p.polls--; p.polls <= 0 {
			f.ops[req.Name] = p.final
			op = p.final
			delete(f.opsPending, req.Name)
		}
	}
	return proto.Clone(op).(*longrunningpb.Operation), nil
}

func (o *operations) WaitOperation(ctx context.Context, req *longrunningpb.WaitOperationRequest) (*longrunningpb.Operation, error) {
	return o.GetOperation(ctx, &longrunningpb.GetOperationRequest{Name: req.Name})
}

// ---- Secret Manager ----

type secretManager struct {
	secretmanagerpb.UnimplementedSecretManagerServiceServer
	f *Server
}

var reSecretID = regexp.MustCompile(`^[A-Za-z0-9_-]{1,255}$`)

func (m *secretManager) CreateSecret(_ context.Context, req *secretmanagerpb.CreateSecretRequest) (*secretmanagerpb.Secret, error) {
	f := m.f
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.enter("CreateSecret"); err != nil {
		return nil, err
	}
	if !reSecretID.MatchString(req.SecretId) {
		return nil, status.Errorf(codes.InvalidArgument, "secret_id %q: letters, digits, '_' and '-' only, at most 255", req.SecretId)
	}
	if req.GetSecret().GetReplication() == nil {
		return nil, status.Error(codes.InvalidArgument, "secret.replication is required")
	}
	name := req.Parent + "/secrets/" + req.SecretId
	if _, dup := f.secrets[name]; dup {
		return nil, status.Errorf(codes.AlreadyExists, "Secret [%s] already exists.", name)
	}
	s := proto.Clone(req.Secret).(*secretmanagerpb.Secret)
	s.Name, s.CreateTime = name, timestamppb.Now()
	f.secrets[name] = &secret{s: s}
	return proto.Clone(s).(*secretmanagerpb.Secret), nil
}

func (m *secretManager) GetSecret(_ context.Context, req *secretmanagerpb.GetSecretRequest) (*secretmanagerpb.Secret, error) {
	f := m.f
	f.mu.Lock()
	defer f.mu.Unlock()
	s, ok := f.secrets[req.Name]
	if !ok {
		return nil, status.Errorf(codes.NotFound, "Secret [%s] not found or has no versions.", req.Name)
	}
	return proto.Clone(s.s).(*secretmanagerpb.Secret), nil
}

func (m *secretManager) AddSecretVersion(_ context.Context, req *secretmanagerpb.AddSecretVersionRequest) (*secretmanagerpb.SecretVersion, error) {
	f := m.f
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.enter("AddSecretVersion"); err != nil {
		return nil, err
	}
	s, ok := f.secrets[req.Parent]
	if !ok {
		return nil, status.Errorf(codes.NotFound, "Secret [%s] not found.", req.Parent)
	}
	s.versions = append(s.versions, append([]byte(nil), req.GetPayload().GetData()...))
	return &secretmanagerpb.SecretVersion{Name: fmt.Sprintf("%s/versions/%d", req.Parent, len(s.versions)),
		CreateTime: timestamppb.Now(), State: secretmanagerpb.SecretVersion_ENABLED}, nil
}

func (m *secretManager) AccessSecretVersion(_ context.Context, req *secretmanagerpb.AccessSecretVersionRequest) (*secretmanagerpb.AccessSecretVersionResponse, error) {
	f := m.f
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.enter("AccessSecretVersion"); err != nil {
		return nil, err
	}
	i := strings.LastIndex(req.Name, "/versions/")
	if i < 0 {
		return nil, status.Errorf(codes.InvalidArgument, "name %q: want projects/*/secrets/*/versions/*", req.Name)
	}
	secretName, version := req.Name[:i], req.Name[i+len("/versions/"):]
	v, err := f.accessLocked(secretName, version)
	if err != nil {
		return nil, err
	}
	n := version
	if version == "latest" {
		n = strconv.Itoa(len(f.secrets[secretName].versions))
	}
	return &secretmanagerpb.AccessSecretVersionResponse{Name: secretName + "/versions/" + n, Payload: &secretmanagerpb.SecretPayload{Data: v}}, nil
}

// AddSecret stores a secret with one version holding value, as a user
// would create it outside alphaswarm; name is projects/<p>/secrets/<id>.
func (f *Server) AddSecret(name string, value []byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.secrets[name] = &secret{s: &secretmanagerpb.Secret{Name: name, CreateTime: timestamppb.Now()}, versions: [][]byte{value}}
}

// GetIamPolicy returns the secret's policy (empty with an etag when none
// was set), as google.iam.v1.IAMPolicy.GetIamPolicy does.
func (m *secretManager) GetIamPolicy(_ context.Context, req *iampb.GetIamPolicyRequest) (*iampb.Policy, error) {
	f := m.f
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.enter("GetIamPolicy"); err != nil {
		return nil, err
	}
	s, ok := f.secrets[req.Resource]
	if !ok {
		return nil, status.Errorf(codes.NotFound, "Secret [%s] not found.", req.Resource)
	}
	if s.policy == nil {
		s.policy = &iampb.Policy{Version: 1, Etag: []byte(randHex(4))}
	}
	return proto.Clone(s.policy).(*iampb.Policy), nil
}

// SetIamPolicy replaces the secret's policy. A policy carrying an etag
// that no longer matches is ABORTED (google/iam/v1/policy.proto,
// Policy.etag: "If no etag is provided ... the existing policy is
// overwritten"; a stale one fails the call).
func (m *secretManager) SetIamPolicy(_ context.Context, req *iampb.SetIamPolicyRequest) (*iampb.Policy, error) {
	f := m.f
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.enter("SetIamPolicy"); err != nil {
		return nil, err
	}
	s, ok := f.secrets[req.Resource]
	if !ok {
		return nil, status.Errorf(codes.NotFound, "Secret [%s] not found.", req.Resource)
	}
	if req.Policy == nil {
		return nil, status.Error(codes.InvalidArgument, "policy is required")
	}
	if len(req.Policy.Etag) > 0 && s.policy != nil && string(req.Policy.Etag) != string(s.policy.Etag) {
		return nil, status.Error(codes.Aborted, "There were concurrent policy changes. Please retry the whole read-modify-write with exponential backoff.")
	}
	p := proto.Clone(req.Policy).(*iampb.Policy)
	p.Etag = []byte(randHex(4))
	s.policy = p
	return proto.Clone(p).(*iampb.Policy), nil
}

// accessLocked resolves a secret version; secret may be a full name or a
// bare id (then any project matches, as Cloud Run resolves it in the
// service's project).
func (f *Server) accessLocked(secretName, version string) ([]byte, error) {
	s, ok := f.secrets[secretName]
	if !ok {
		for n, x := range f.secrets {
			if shortName(n) == secretName {
				s, ok = x, true
			}
		}
	}
	if !ok {
		return nil, status.Errorf(codes.NotFound, "Secret [%s] not found or has no versions.", secretName)
	}
	n := len(s.versions)
	if version != "latest" {
		var err error
		if n, err = strconv.Atoi(version); err != nil {
			return nil, status.Errorf(codes.InvalidArgument, "version %q", version)
		}
	}
	if n < 1 || n > len(s.versions) {
		return nil, status.Errorf(codes.NotFound, "Secret Version [%s/versions/%s] not found.", secretName, version)
	}
	return s.versions[n-1], nil
}

// ---- Cloud Monitoring ----

type metricService struct {
	monitoringpb.UnimplementedMetricServiceServer
	f *Server
}

var (
	reMetricType  = regexp.MustCompile(`metric\.type\s*=\s*"([^"]+)"`)
	reServiceName = regexp.MustCompile(`resource\.labels\.service_name\s*=\s*"([^"]+)"`)
)

// ListTimeSeries serves one aligned point per call for the Cloud Run
// metrics the provider reads, computed from the fake's state: instance
// count = running instances, request_count grows by 10 per call, CPU and
// memory utilisation distributions with means 0.25 and 0.4.
func (m *metricService) ListTimeSeries(_ context.Context, req *monitoringpb.ListTimeSeriesRequest) (*monitoringpb.ListTimeSeriesResponse, error) {
	f := m.f
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.enter("ListTimeSeries"); err != nil {
		return nil, err
	}
	if req.GetInterval().GetEndTime() == nil {
		return nil, status.Error(codes.InvalidArgument, "interval.end_time is required")
	}
	mt := reMetricType.FindStringSubmatch(req.Filter)
	sn := reServiceName.FindStringSubmatch(req.Filter)
	if mt == nil {
		return nil, status.Error(codes.InvalidArgument, "filter must name a metric.type")
	}
	var s *service
	for _, x := range f.services {
		if sn != nil && shortName(x.svc.Name) == sn[1] {
			s = x
		}
	}
	if s == nil || len(s.instances) == 0 {
		return &monitoringpb.ListTimeSeriesResponse{}, nil
	}
	// Points arrive late: Cloud Run's metrics are "Sampled every 60
	// seconds. After sampling, data is not visible for up to 180 seconds"
	// (cloud.google.com/monitoring/api/metrics_gcp, run.googleapis.com;
	// "Retention and latency of metric data",
	// cloud.google.com/monitoring/quotas). The newest point ends
	// MetricLatency ago, and only a point inside the requested interval
	// is returned.
	end := timestamppb.New(time.Now().Add(-f.MetricLatency))
	if iv := req.GetInterval(); end.AsTime().After(iv.GetEndTime().AsTime()) || (iv.GetStartTime() != nil && end.AsTime().Before(iv.GetStartTime().AsTime())) {
		return &monitoringpb.ListTimeSeriesResponse{}, nil
	}
	start := timestamppb.New(end.AsTime().Add(-req.GetAggregation().GetAlignmentPeriod().AsDuration()))
	var v *monitoringpb.TypedValue
	switch mt[1] {
	case "run.googleapis.com/container/instance_count":
		v = &monitoringpb.TypedValue{Value: &monitoringpb.TypedValue_Int64Value{Int64Value: int64(len(s.instances))}}
	case "run.googleapis.com/request_count":
		f.requests += 10
		v = &monitoringpb.TypedValue{Value: &monitoringpb.TypedValue_Int64Value{Int64Value: 10}}
	case "run.googleapis.com/container/cpu/utilizations":
		v = &monitoringpb.TypedValue{Value: &monitoringpb.TypedValue_DistributionValue{DistributionValue: &distribution.Distribution{Count: int64(len(s.instances)), Mean: 0.25}}}
	case "run.googleapis.com/container/memory/utilizations":
		v = &monitoringpb.TypedValue{Value: &monitoringpb.TypedValue_DistributionValue{DistributionValue: &distribution.Distribution{Count: int64(len(s.instances)), Mean: 0.4}}}
	default:
		return &monitoringpb.ListTimeSeriesResponse{}, nil
	}
	if req.GetAggregation().GetPerSeriesAligner() == monitoringpb.Aggregation_ALIGN_MEAN {
		if d := v.GetDistributionValue(); d != nil {
			v = &monitoringpb.TypedValue{Value: &monitoringpb.TypedValue_DoubleValue{DoubleValue: d.Mean}}
		}
	}
	return &monitoringpb.ListTimeSeriesResponse{TimeSeries: []*monitoringpb.TimeSeries{{
		Resource: &monitoredres.MonitoredResource{Type: "cloud_run_revision", Labels: map[string]string{"service_name": shortName(s.svc.Name)}},
		Points:   []*monitoringpb.Point{{Interval: &monitoringpb.TimeInterval{StartTime: start, EndTime: end}, Value: v}},
	}}}, nil
}

// ---- Cloud Logging ----

type loggingService struct {
	loggingpb.UnimplementedLoggingServiceV2Server
	f *Server
}

var reSince = regexp.MustCompile(`timestamp\s*>=\s*"([^"]+)"`)

func matchEntry(filter string, e *loggingpb.LogEntry) bool {
	if sn := reServiceName.FindStringSubmatch(filter); sn != nil && e.GetResource().GetLabels()["service_name"] != sn[1] {
		return false
	}
	if m := reSince.FindStringSubmatch(filter); m != nil {
		t, err := time.Parse(time.RFC3339Nano, m[1])
		if err == nil && e.Timestamp.AsTime().Before(t) {
			return false
		}
	}
	return true
}

func (l *loggingService) WriteLogEntries(_ context.Context, req *loggingpb.WriteLogEntriesRequest) (*loggingpb.WriteLogEntriesResponse, error) {
	f := l.f
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, e := range req.Entries {
		e = proto.Clone(e).(*loggingpb.LogEntry)
		if e.Timestamp == nil {
			e.Timestamp = timestamppb.Now()
		}
		if e.InsertId == "" {
			e.InsertId = randHex(8)
		}
		f.logs = append(f.logs, e)
	}
	close(f.logCond)
	f.logCond = make(chan struct{})
	return &loggingpb.WriteLogEntriesResponse{}, nil
}

// ListLogEntries supports the filter terms the provider writes
// (service_name, timestamp >=), order_by "timestamp asc|desc" and
// page_size/page_token.
func (l *loggingService) ListLogEntries(_ context.Context, req *loggingpb.ListLogEntriesRequest) (*loggingpb.ListLogEntriesResponse, error) {
	f := l.f
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.enter("ListLogEntries"); err != nil {
		return nil, err
	}
	if len(req.ResourceNames) == 0 {
		return nil, status.Error(codes.InvalidArgument, "resource_names is required")
	}
	// ListLogEntriesRequest.page_size: "Default is 50. If the value is
	// negative or exceeds 1000, the request is rejected."
	if req.PageSize < 0 || req.PageSize > 1000 {
		return nil, status.Errorf(codes.InvalidArgument, "page_size %d: must be 0 to 1000", req.PageSize)
	}
	now := time.Now()
	for len(f.logReads) > 0 && now.Sub(f.logReads[0]) >= time.Minute {
		f.logReads = f.logReads[1:]
	}
	if f.LogReadQuota > 0 && len(f.logReads) >= f.LogReadQuota {
		return nil, status.Errorf(codes.ResourceExhausted, "Quota exceeded for quota metric 'Read requests' and limit 'Read requests per minute' of service 'logging.googleapis.com' (quota_limit_value %d)", f.LogReadQuota)
	}
	f.logReads = append(f.logReads, now)
	var all []*loggingpb.LogEntry
	for _, e := range f.logs {
		if matchEntry(req.Filter, e) {
			all = append(all, e)
		}
	}
	switch req.OrderBy {
	case "", "timestamp asc":
		sort.SliceStable(all, func(i, j int) bool { return all[i].Timestamp.AsTime().Before(all[j].Timestamp.AsTime()) })
	case "timestamp desc":
		sort.SliceStable(all, func(i, j int) bool { return all[i].Timestamp.AsTime().After(all[j].Timestamp.AsTime()) })
	default:
		return nil, status.Errorf(codes.InvalidArgument, "order_by %q", req.OrderBy)
	}
	off := 0
	if req.PageToken != "" {
		var err error
		if off, err = strconv.Atoi(req.PageToken); err != nil {
			return nil, status.Error(codes.InvalidArgument, "bad page_token")
		}
	}
	size := int(req.PageSize)
	if size == 0 {
		size = 50
	}
	out := &loggingpb.ListLogEntriesResponse{}
	end := min(off+size, len(all))
	if off < len(all) {
		for _, e := range all[off:end] {
			out.Entries = append(out.Entries, proto.Clone(e).(*loggingpb.LogEntry))
		}
	}
	if end < len(all) {
		out.NextPageToken = strconv.Itoa(end)
	}
	return out, nil
}

// TailLogEntries streams entries written after the first request arrives
// that match its filter, until the client goes away.
func (l *loggingService) TailLogEntries(stream loggingpb.LoggingServiceV2_TailLogEntriesServer) error {
	f := l.f
	req, err := stream.Recv()
	if err != nil {
		return err
	}
	if err := f.checkRequest("/google.logging.v2.LoggingServiceV2/TailLogEntries", req); err != nil {
		return err
	}
	f.mu.Lock()
	if err := f.enter("TailLogEntries"); err != nil {
		f.mu.Unlock()
		return err
	}
	if f.MaxTailSessions > 0 && f.tails >= f.MaxTailSessions {
		f.mu.Unlock()
		return status.Errorf(codes.ResourceExhausted, "Quota exceeded: at most %d open live-tailing sessions per project", f.MaxTailSessions)
	}
	f.tails++
	defer func() {
		f.mu.Lock()
		f.tails--
		f.mu.Unlock()
	}()
	before := f.BeforeTail
	f.mu.Unlock()
	if before != nil {
		before()
	}
	f.mu.Lock()
	next := len(f.logs)
	gen := f.tailGen
	f.mu.Unlock()
	for {
		f.mu.Lock()
		if f.tailGen != gen {
			err := f.tailErr
			f.mu.Unlock()
			return err
		}
		var batch []*loggingpb.LogEntry
		for _, e := range f.logs[next:] {
			if matchEntry(req.Filter, e) {
				batch = append(batch, proto.Clone(e).(*loggingpb.LogEntry))
			}
		}
		next = len(f.logs)
		wake := f.logCond
		resp := &loggingpb.TailLogEntriesResponse{Entries: batch}
		if f.SuppressEvery && len(batch) > 0 {
			// A tail over its rate: entries and, in the same response,
			// how many were left out (TailLogEntriesResponse: "entries"
			// and "suppression_info" are both set when some entries were
			// suppressed, reason RATE_LIMIT: "entries being received in
			// excess of rate limits").
			resp.SuppressionInfo = []*loggingpb.TailLogEntriesResponse_SuppressionInfo{{
				Reason: loggingpb.TailLogEntriesResponse_SuppressionInfo_RATE_LIMIT, SuppressedCount: 1}}
		}
		if f.suppress && len(batch) > 0 {
			f.suppress = false
			resp = &loggingpb.TailLogEntriesResponse{SuppressionInfo: []*loggingpb.TailLogEntriesResponse_SuppressionInfo{{
				Reason: loggingpb.TailLogEntriesResponse_SuppressionInfo_RATE_LIMIT, SuppressedCount: int32(len(batch))}}}
		}
		f.mu.Unlock()
		if len(batch) > 0 {
			if err := stream.Send(resp); err != nil {
				return err
			}
		}
		select {
		case <-stream.Context().Done():
			return nil
		case <-wake:
		}
	}
}
