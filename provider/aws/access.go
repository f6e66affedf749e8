package aws

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	sdkaws "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go"

	"github.com/alphaswarm/controller/provider"
	"github.com/alphaswarm/controller/workload"
)

// permission is one IAM action the provider performs, on the resource it
// performs it on, and the operations that perform it. The list is the
// policy of docs/providers/aws.md; checkAccess simulates it with IAM
// SimulatePrincipalPolicy when the target opens and every five minutes.
type permission struct {
	action   string
	resource string // an ARN (with * where the name is the user's) or "*"
	ops      []provider.Operation
	// configOnly: Start needs it only for a spec with config.
	configOnly bool
	// degrades says what is lost without it; such a permission is
	// reported but does not refuse its operations.
	degrades string
	// taskRole: simulated for the task role (taskRoleArn), which the
	// tasks' ECS Exec agent uses, not for the controller's identity.
	taskRole bool
}

func (m permission) String() string {
	if m.resource == "*" {
		return m.action
	}
	return m.action + " on " + m.resource
}

var (
	// waiting operations end with Status (ListTasks, DescribeTasks).
	waiting = []provider.Operation{provider.OpStart, provider.OpStop, provider.OpScale, provider.OpRestart,
		provider.OpApplyConfig, provider.OpStatus}
	writing = []provider.Operation{provider.OpStart, provider.OpApplyConfig}
)

// permissions lists what the target needs with its options, in the
// partition and account of the caller (resource types and ARN formats
// from the Service Authorization Reference of ECS, SSM, CloudWatch Logs,
// CloudWatch and IAM).
func (p *Provider) permissions(partition, account string) []permission {
	arn := func(svc, res string) string {
		return "arn:" + partition + ":" + svc + ":" + p.region() + ":" + account + ":" + res
	}
	cluster := p.clusterName()
	services := arn("ecs", "service/"+cluster+"/*")
	tasks := arn("ecs", "task/"+cluster+"/*")
	params := arn("ssm", "parameter"+strings.TrimSuffix(p.paramPath("*"), "/"))
	group := arn("logs", "log-group:"+p.opts.LogGroup+":*")
	read := append(slices.Clone(waiting), provider.OpStreamMetrics, provider.OpExec, provider.OpLogs)
	perms := []permission{
		{action: "ecs:DescribeServices", resource: services, ops: read},
		{action: "ecs:ListTasks", resource: "*", ops: append(slices.Clone(waiting), provider.OpExec, provider.OpLogs)},
		{action: "ecs:DescribeTasks", resource: tasks, ops: append(slices.Clone(waiting), provider.OpExec, provider.OpLogs)},
		{action: "ecs:DescribeTaskDefinition", resource: "*", ops: append(slices.Clone(writing), provider.OpStreamMetrics)},
		{action: "ecs:RegisterTaskDefinition", resource: "*", ops: writing},
		{action: "ecs:TagResource", resource: arn("ecs", "task-definition/"+p.family("*")), ops: writing},
		{action: "ecs:CreateService", resource: services, ops: []provider.Operation{provider.OpStart}},
		{action: "ecs:TagResource", resource: services, ops: []provider.Operation{provider.OpStart}},
		{action: "ecs:UpdateService", resource: services, ops: []provider.Operation{provider.OpStart, provider.OpStop,
			provider.OpScale, provider.OpRestart, provider.OpApplyConfig}},
		{action: "ssm:PutParameter", resource: params, ops: writing, configOnly: true},
		{action: "ssm:GetParametersByPath", resource: params, ops: writing, configOnly: true},
		{action: "ssm:DeleteParameters", resource: params, ops: writing, configOnly: true},
		{action: "cloudwatch:GetMetricData", resource: "*", ops: []provider.Operation{provider.OpStreamMetrics}},
		{action: "logs:FilterLogEvents", resource: group, ops: []provider.Operation{provider.OpLogs}},
	}
	for _, role := range []string{p.opts.ExecutionRoleArn, p.opts.TaskRoleArn} {
		if role != "" {
			perms = append(perms, permission{action: "iam:PassRole", resource: role, ops: writing})
		}
	}
	if p.liveTailOn() {
		lost := "logs -f polls FilterLogEvents instead of live tail"
		perms = append(perms,
			permission{action: "logs:DescribeLogGroups", resource: arn("logs", "log-group:*"), ops: []provider.Operation{provider.OpLogs}, degrades: lost},
			permission{action: "logs:StartLiveTail", resource: group, ops: []provider.Operation{provider.OpLogs}, degrades: lost})
	}
	if p.opts.EnableExecuteCommand && p.opts.TaskRoleArn != "" {
		exec := []provider.Operation{provider.OpExec}
		perms = append(perms,
			permission{action: "ecs:ExecuteCommand", resource: arn("ecs", "cluster/"+cluster), ops: exec},
			permission{action: "ecs:ExecuteCommand", resource: tasks, ops: exec},
			permission{action: "ssm:TerminateSession", resource: arn("ssm", "session/*"), ops: exec,
				degrades: "a session whose client went away cannot be ended: its command runs on until Session Manager's idle timeout"})
		for _, a := range []string{"CreateControlChannel", "CreateDataChannel", "OpenControlChannel", "OpenDataChannel"} {
			perms = append(perms, permission{action: "ssmmessages:" + a, resource: "*", ops: exec, taskRole: true})
		}
	}
	return perms
}

// liveTailOn reports whether following uses StartLiveTail (option liveTail,
// default true).
func (p *Provider) liveTailOn() bool { return p.opts.LiveTail == nil || *p.opts.LiveTail }

// accessState is what the last check found.
type accessState struct {
	checked   bool
	principal string       // the simulated identity (an IAM user or role ARN)
	account   string       // the caller's account (GetCallerIdentity)
	missing   []permission // not allowed
	unknown   string       // why the controller's permissions could not be checked ("" if they were)
	taskRole  string       // why the task role's could not be ("" if they were or need not be)
}

// firstAccessWait bounds how long an operation waits for the first check
// of a target that just opened.
const firstAccessWait = 5 * time.Second

// accessInterval is how often the permissions are checked again: IAM
// policies change while the controller runs.
const accessInterval = 5 * time.Minute

// checkAccess resolves the caller with STS GetCallerIdentity and asks IAM
// SimulatePrincipalPolicy which of the permissions it lacks, one call per
// resource. A check that cannot be made (the simulation itself is
// denied, the identity cannot be simulated, AWS does not answer) leaves
// the permissions unknown: nothing is refused on its account, and the
// reason is logged.
func (p *Provider) checkAccess(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var st accessState
	id, err := p.sts.GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	if err != nil {
		if ctx.Err() != nil && !errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return // closed
		}
		st.unknown = "sts:GetCallerIdentity failed: " + mapErr("GetCallerIdentity", err).Error()
		p.setAccess(st)
		return
	}
	caller := sdkaws.ToString(id.Arn)
	st.account = sdkaws.ToString(id.Account)
	partition := "aws"
	if parts := strings.SplitN(caller, ":", 3); len(parts) == 3 {
		partition = parts[1]
	}
	perms := p.permissions(partition, sdkaws.ToString(id.Account))
	src, why := policySource(caller, p.creds.Provider(Name)["AWS_ROLE_ARN"])
	st.principal = src
	if why != "" {
		st.unknown = why
	} else if missing, err := p.simulate(ctx, src, perms, false); err != nil {
		st.unknown = err.Error()
	} else {
		st.missing = missing
	}
	if p.opts.EnableExecuteCommand && p.opts.TaskRoleArn != "" {
		if missing, err := p.simulate(ctx, p.opts.TaskRoleArn, perms, true); err != nil {
			st.taskRole = err.Error()
		} else {
			st.missing = append(st.missing, missing...)
		}
	}
	if ctx.Err() != nil && !errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return // closed while checking
	}
	st.checked = true
	p.setAccess(st)
}

func (p *Provider) setAccess(st accessState) {
	p.accessMu.Lock()
	changed := fmt.Sprint(p.access) != fmt.Sprint(st)
	p.access = st
	p.accessMu.Unlock()
	if !changed {
		return
	}
	var names []string
	for _, m := range st.missing {
		names = append(names, m.String())
	}
	switch {
	case len(st.missing) > 0:
		slog.Warn("aws target lacks IAM permissions it needs", "target", p.target, "principal", st.principal,
			"missing_permissions", strings.Join(names, ", "), "unknown", st.unknown, "task_role_unknown", st.taskRole)
	case st.unknown != "" || st.taskRole != "":
		slog.Warn("aws target: cannot check its IAM permissions; operations will find out", "target", p.target,
			"reason", st.unknown, "task_role_unknown", st.taskRole)
	}
}

// policySource is the ARN SimulatePrincipalPolicy takes for the caller:
// an IAM user or role as it is; for an assumed-role session the role
// (its path, which the session ARN leaves out, is taken from
// AWS_ROLE_ARN when that names the same role). why says why the caller
// cannot be simulated (root, federated users): IAM simulates "a user,
// group, or role" (SimulatePrincipalPolicyInput.PolicySourceArn).
func policySource(caller, envRole string) (src, why string) {
	parts := strings.SplitN(caller, ":", 6)
	if len(parts) != 6 {
		return "", fmt.Sprintf("the caller %q is not an ARN", caller)
	}
	partition, svc, account, res := parts[1], parts[2], parts[4], parts[5]
	switch {
	case svc == "iam" && (strings.HasPrefix(res, "user/") || strings.HasPrefix(res, "role/")):
		return caller, ""
	case svc == "sts" && strings.HasPrefix(res, "assumed-role/"):
		name, _, _ := strings.Cut(strings.TrimPrefix(res, "assumed-role/"), "/")
		if strings.HasSuffix(envRole, "/"+name) && strings.Contains(envRole, ":iam::"+account+":role/") {
			return envRole, ""
		}
		return "arn:" + partition + ":iam::" + account + ":role/" + name, ""
	case svc == "iam" && res == "root":
		return "", "the caller is the account's root user, which IAM does not simulate"
	}
	return "", fmt.Sprintf("the caller %s is not an IAM user or role, which is all IAM simulates", caller)
}

// simulate asks IAM which of perms (the task role's, or the caller's)
// principal lacks: one SimulatePrincipalPolicy per resource, every page.
func (p *Provider) simulate(ctx context.Context, principal string, perms []permission, taskRole bool) ([]permission, error) {
	byResource := map[string][]permission{}
	var order []string
	for _, m := range perms {
		if m.taskRole != taskRole {
			continue
		}
		if _, ok := byResource[m.resource]; !ok {
			order = append(order, m.resource)
		}
		byResource[m.resource] = append(byResource[m.resource], m)
	}
	var missing []permission
	for _, res := range order {
		group := byResource[res]
		var actions []string
		for _, m := range group {
			if !slices.Contains(actions, m.action) {
				actions = append(actions, m.action)
			}
		}
		decision := map[string]string{}
		pages := iam.NewSimulatePrincipalPolicyPaginator(p.iam, &iam.SimulatePrincipalPolicyInput{
			PolicySourceArn: sdkaws.String(principal), ActionNames: actions, ResourceArns: []string{res}})
		for pages.HasMorePages() {
			out, err := pages.NextPage(ctx)
			if err != nil {
				return nil, simulateError(principal, taskRole, err)
			}
			for _, r := range out.EvaluationResults {
				decision[sdkaws.ToString(r.EvalActionName)] = string(r.EvalDecision)
			}
		}
		for _, m := range group {
			if decision[m.action] != "allowed" {
				missing = append(missing, m)
			}
		}
	}
	return missing, nil
}

// simulateError says why a simulation could not be made.
func simulateError(principal string, taskRole bool, err error) error {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		switch ae.ErrorCode() {
		case "AccessDenied", "AccessDeniedException":
			return fmt.Errorf("iam:SimulatePrincipalPolicy on %s is denied, so the permissions are unknown (allow it to have them checked): %s", principal, ae.ErrorMessage())
		case "NoSuchEntity":
			hint := "a role with a path? set AWS_ROLE_ARN to its full ARN"
			if taskRole {
				hint = "check the target option taskRoleArn"
			}
			return fmt.Errorf("IAM does not know %s (%s): %s", principal, hint, ae.ErrorMessage())
		}
	}
	return fmt.Errorf("iam:SimulatePrincipalPolicy on %s failed, so the permissions are unknown: %w", principal, mapErr("SimulatePrincipalPolicy", err))
}

// missingFor says which permissions op lacks ("" if none is known to be
// missing). withConfig: a Start whose spec has config.
func (p *Provider) missingFor(op provider.Operation, withConfig bool) string {
	p.accessMu.Lock()
	st := p.access
	p.accessMu.Unlock()
	var mine, role []string
	for _, m := range st.missing {
		if m.degrades != "" || !slices.Contains(m.ops, op) || (m.configOnly && op == provider.OpStart && !withConfig) {
			continue
		}
		if m.taskRole {
			role = append(role, m.String())
		} else {
			mine = append(mine, m.String())
		}
	}
	var parts []string
	if len(mine) > 0 {
		who := "the target's AWS identity"
		if st.principal != "" {
			who += " (" + st.principal + ")"
		}
		parts = append(parts, fmt.Sprintf("%s is not allowed %s", who, strings.Join(mine, ", ")))
	}
	if len(role) > 0 {
		parts = append(parts, fmt.Sprintf("the task role (%s), which ECS Exec's agent in the task uses, is not allowed %s",
			p.opts.TaskRoleArn, strings.Join(role, ", ")))
	}
	if len(parts) == 0 {
		return ""
	}
	return strings.Join(parts, "; ") + " (IAM SimulatePrincipalPolicy; the policy the provider needs is in docs/providers/aws.md)"
}

// permitted fails fast with PermissionDenied naming what op lacks, before
// any call that would fail on it. Right after the target opened it waits
// (bounded) for the first check.
func (p *Provider) permitted(op provider.Operation, withConfig bool) error {
	if p.accessFirst == nil {
		return nil // checkPermissions: false
	}
	select {
	case <-p.accessFirst:
	case <-time.After(firstAccessWait):
	}
	if why := p.missingFor(op, withConfig); why != "" {
		return provider.Errorf(Name, workload.PermissionDenied, "%s: %s", op, why)
	}
	return nil
}

// MissingPermission implements provider.PermissionExplainer.
func (p *Provider) MissingPermission(op provider.Operation) string { return p.missingFor(op, true) }

// Ping implements provider.Pinger from what the last check found: it
// fails when the identity lacks a permission that reading a service's
// status needs (ecs:DescribeServices, ListTasks, DescribeTasks), which
// every operation does; permissions only some operations need are
// reported by the capability matrix instead. It makes no request.
func (p *Provider) Ping(context.Context) error {
	if why := p.missingFor(provider.OpStatus, false); why != "" {
		return provider.Errorf(Name, workload.PermissionDenied, "%s", why)
	}
	return nil
}

// Close implements io.Closer: it stops the permission checks.
func (p *Provider) Close() error {
	if p.stopAccess != nil {
		p.stopAccess()
		<-p.accessDone
	}
	return nil
}
