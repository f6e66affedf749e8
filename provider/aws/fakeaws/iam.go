package fakeaws

import (
	"encoding/xml"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
)

// IAM identities and policies. With Options.Policies set, every signed
// request is authorised as AWS does for identity-based policies, and
// IAM SimulatePrincipalPolicy and STS GetCallerIdentity answer from the
// same policies. Both speak the query protocol: a form-encoded POST with
// Action and Version, answered in XML (IAM API reference, "Making query
// requests"; STS likewise).
//
// Policy evaluation (IAM User Guide, "Policy evaluation logic"): an
// explicit Deny in any statement wins; otherwise an Allow of the action
// on the resource allows; otherwise the request is implicitly denied.
// Action and Resource match with the wildcards * (any run of characters)
// and ? (one character); actions case-insensitively, resources
// case-sensitively (IAM JSON policy elements: Action, Resource).
// Resource-based policies, permissions boundaries, SCPs, session policies
// and Condition elements are not modelled.

// Statement is one statement of an identity-based IAM policy.
type Statement struct {
	Effect   string   // "Allow" or "Deny"
	Action   []string // "service:Action", wildcards allowed
	Resource []string // ARNs, wildcards allowed; empty means "*"
}

// DefaultCaller is the identity of requests signed with static keys when
// Options.Caller is empty.
func (f *Fake) DefaultCaller() string { return "arn:aws:iam::" + f.opts.Account + ":user/alphaswarm" }

// caller is who signed a request: the assumed role for the key the fake
// issues for web identity, Options.Caller (or DefaultCaller) for any
// other key.
func (f *Fake) caller(accessKeyID string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if accessKeyID == AssumedAccessKey && f.stsRole != "" {
		return assumedRoleArn(f.stsRole, f.stsSession)
	}
	if f.opts.Caller != "" {
		return f.opts.Caller
	}
	return f.DefaultCaller()
}

// SetPolicies replaces Options.Policies (nil: everything allowed).
func (f *Fake) SetPolicies(p map[string][]Statement) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.opts.Policies = p
}

// policyOf finds the policies of an IAM user or role ARN, or of the role
// behind an assumed-role session ARN (arn:aws:sts::<acct>:assumed-role/
// <name>/<session>: the role's path is not in it, so the role is found by
// its name). ok is false when the principal is unknown.
func (f *Fake) policyOf(arn string) (stmts []Statement, key string, ok bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.opts.Policies == nil {
		return nil, arn, true
	}
	if rest, found := strings.CutPrefix(arn, "arn:aws:sts::"+f.opts.Account+":assumed-role/"); found {
		name, _, _ := strings.Cut(rest, "/")
		for k, v := range f.opts.Policies {
			if strings.HasPrefix(k, "arn:aws:iam::"+f.opts.Account+":role/") && k[strings.LastIndex(k, "/")+1:] == name {
				return v, k, true
			}
		}
		return nil, "", false
	}
	v, ok := f.opts.Policies[arn]
	return v, arn, ok
}

// decision evaluates action on resource for a principal's statements:
// "allowed", "explicitDeny" or "implicitDeny" (the EvalDecision values of
// IAM's EvaluationResult). A nil Options.Policies allows everything.
func (f *Fake) decision(stmts []Statement, everything bool, action, resource string) string {
	if everything {
		return "allowed"
	}
	allowed := false
	for _, s := range stmts {
		if !matchAny(s.Action, action, true) {
			continue
		}
		res := s.Resource
		if len(res) == 0 {
			res = []string{"*"}
		}
		if !matchAny(res, resource, false) {
			continue
		}
		if s.Effect == "Deny" {
			return "explicitDeny"
		}
		if s.Effect == "Allow" {
			allowed = true
		}
	}
	if allowed {
		return "allowed"
	}
	return "implicitDeny"
}

func matchAny(patterns []string, s string, fold bool) bool {
	for _, p := range patterns {
		if wildcard(p, s, fold) {
			return true
		}
	}
	return false
}

// wildcard matches IAM's * and ? wildcards.
func wildcard(pattern, s string, fold bool) bool {
	var b strings.Builder
	if fold {
		b.WriteString("(?i)")
	}
	b.WriteString("^")
	for _, r := range pattern {
		switch r {
		case '*':
			b.WriteString(".*")
		case '?':
			b.WriteString(".")
		default:
			b.WriteString(regexp.QuoteMeta(string(r)))
		}
	}
	b.WriteString("$")
	ok, _ := regexp.MatchString(b.String(), s)
	return ok
}

// authorize checks that the request's signer may perform every action on
// its resource; the first denial is the error answer, worded as AWS words
// it ("User: <arn> is not authorized to perform: <action> on resource:
// <resource> because no identity-based policy allows the <action>
// action"; IAM User Guide, "Troubleshoot access denied error messages").
func (f *Fake) authorize(accessKeyID string, code string, needs []need) *apiError {
	f.mu.Lock()
	everything := f.opts.Policies == nil
	f.mu.Unlock()
	if everything || len(needs) == 0 {
		return nil
	}
	who := f.caller(accessKeyID)
	stmts, _, ok := f.policyOf(who)
	for _, n := range needs {
		d := "implicitDeny"
		if ok {
			d = f.decision(stmts, false, n.action, n.resource)
		}
		f.count("authz." + n.action + "." + d)
		switch d {
		case "explicitDeny":
			return errf(400, code, "User: %s is not authorized to perform: %s on resource: %s with an explicit deny in an identity-based policy", who, n.action, n.resource)
		case "implicitDeny":
			return errf(400, code, "User: %s is not authorized to perform: %s on resource: %s because no identity-based policy allows the %s action", who, n.action, n.resource, n.action)
		}
	}
	return nil
}

// need is one action on one resource that a request requires.
type need struct{ action, resource string }

// needsOf lists what a JSON-protocol request needs. Resource ARNs follow
// the Service Authorization Reference's resource types (ECS: service,
// task, cluster; SSM: parameter, session; CloudWatch Logs: log-group);
// actions without resource-level permissions are checked against "*".
// Two ECS rules besides the action itself: a request that tags what it
// creates needs ecs:TagResource too (ECS Developer Guide, "Grant
// permission to tag resources on creation"), and registering a task
// definition with an execution or task role needs iam:PassRole on each
// role (ECS Developer Guide, "Task execution IAM role" and "Task IAM
// role": "the iam:PassRole permission is required").
func (f *Fake) needsOf(service, op string, in map[string]any) []need {
	region, acct := f.opts.Region, f.opts.Account
	arn := func(svc, res string) string { return "arn:aws:" + svc + ":" + region + ":" + acct + ":" + res }
	cluster := clusterName(str(in, "cluster"))
	action := service + ":" + op
	switch service {
	case "ecs":
		switch op {
		case "DescribeServices":
			var out []need
			for _, s := range strs(in, "services") {
				out = append(out, need{action, arn("ecs", "service/"+cluster+"/"+s)})
			}
			return out
		case "UpdateService":
			return []need{{action, arn("ecs", "service/"+cluster+"/"+str(in, "service"))}}
		case "CreateService":
			out := []need{{action, arn("ecs", "service/"+cluster+"/"+str(in, "serviceName"))}}
			if len(list(in, "tags")) > 0 {
				out = append(out, need{"ecs:TagResource", out[0].resource})
			}
			return out
		case "DescribeTasks":
			var out []need
			for _, t := range strs(in, "tasks") {
				out = append(out, need{action, arn("ecs", "task/"+cluster+"/"+t[strings.LastIndex(t, "/")+1:])})
			}
			return out
		case "ExecuteCommand":
			t := str(in, "task")
			return []need{{action, arn("ecs", "cluster/"+cluster)}, {action, arn("ecs", "task/"+cluster+"/"+t[strings.LastIndex(t, "/")+1:])}}
		case "RegisterTaskDefinition":
			out := []need{{action, "*"}}
			if len(list(in, "tags")) > 0 {
				out = append(out, need{"ecs:TagResource", arn("ecs", "task-definition/"+str(in, "family")+":*")})
			}
			for _, k := range []string{"executionRoleArn", "taskRoleArn"} {
				if r := str(in, k); r != "" {
					out = append(out, need{"iam:PassRole", r})
				}
			}
			return out
		}
	case "ssm":
		switch op {
		case "PutParameter":
			return []need{{action, arn("ssm", "parameter"+str(in, "Name"))}}
		case "GetParametersByPath":
			return []need{{action, arn("ssm", "parameter"+str(in, "Path"))}}
		case "DeleteParameters":
			var out []need
			for _, n := range strs(in, "Names") {
				out = append(out, need{action, arn("ssm", "parameter"+n)})
			}
			return out
		case "TerminateSession":
			return []need{{action, arn("ssm", "session/"+str(in, "SessionId"))}}
		}
	case "secretsmanager":
		// Resource type secret (Service Authorization Reference,
		// AWS Secrets Manager): the secret's full ARN.
		if op == "DescribeSecret" {
			id := str(in, "SecretId")
			f.mu.Lock()
			if s := f.secretByID(id); s != nil {
				id = s.arn
			} else if !strings.HasPrefix(id, "arn:") {
				id = arn("secretsmanager", "secret:"+id)
			}
			f.mu.Unlock()
			return []need{{action, id}}
		}
	case "ecr":
		// Resource type repository (Service Authorization Reference,
		// Amazon Elastic Container Registry).
		if op == "DescribeImages" {
			reg := str(in, "registryId")
			if reg == "" {
				reg = acct
			}
			return []need{{action, "arn:aws:ecr:" + region + ":" + reg + ":repository/" + str(in, "repositoryName")}}
		}
	case "logs":
		switch op {
		case "FilterLogEvents":
			return []need{{action, arn("logs", "log-group:"+str(in, "logGroupName")+":*")}}
		case "StartLiveTail":
			var out []need
			for _, g := range strs(in, "logGroupIdentifiers") {
				out = append(out, need{action, strings.TrimSuffix(g, ":*") + ":*"})
			}
			return out
		case "DescribeLogGroups":
			return []need{{action, arn("logs", "log-group:*")}}
		}
	}
	return []need{{action, "*"}}
}

func clusterName(c string) string {
	if c == "" {
		return "default"
	}
	return c[strings.LastIndex(c, "/")+1:]
}

// serveQuery answers the signed query-protocol calls: STS
// GetCallerIdentity and IAM SimulatePrincipalPolicy. It reports false for
// any other Action.
func (f *Fake) serveQuery(w http.ResponseWriter, form url.Values, accessKeyID string) bool {
	switch form.Get("Action") {
	case "GetCallerIdentity":
		f.count("sts.GetCallerIdentity")
		// "No permissions are required to perform this operation" (STS
		// API reference, GetCallerIdentity).
		who := f.caller(accessKeyID)
		writeXML(w, 200, getCallerIdentityResponse{Xmlns: stsNS, Result: callerIdentity{Arn: who,
			UserID: "AIDAFAKE" + strconv.Itoa(len(who)), Account: f.opts.Account}, RequestID: "fake"})
		return true
	case "SimulatePrincipalPolicy":
		f.count("iam.SimulatePrincipalPolicy")
		f.simulate(w, form, accessKeyID)
		return true
	}
	return false
}

const (
	stsNS = "https://sts.amazonaws.com/doc/2011-06-15/"
	iamNS = "https://iam.amazonaws.com/doc/2010-05-08/"
)

// simulate is SimulatePrincipalPolicy (IAM API reference): the caller
// needs iam:SimulatePrincipalPolicy on the PolicySourceArn; ActionNames
// (required) are evaluated on each of ResourceArns (default "*"); an
// unknown principal is NoSuchEntity (404); results page by MaxItems
// (default 100) with IsTruncated and Marker. One resource ARN per call is
// modelled; more are refused as InvalidInput (not what IAM does: it
// answers ResourceSpecificResults, which the fake does not build).
func (f *Fake) simulate(w http.ResponseWriter, form url.Values, accessKeyID string) {
	src := form.Get("PolicySourceArn")
	actions := members(form, "ActionNames")
	resources := members(form, "ResourceArns")
	if src == "" || len(actions) == 0 {
		writeQueryError(w, errf(400, "InvalidInput", "PolicySourceArn and ActionNames are required"))
		return
	}
	if len(resources) > 1 {
		writeQueryError(w, errf(400, "InvalidInput", "fakeaws models one ResourceArns member per call"))
		return
	}
	if aerr := f.authorize(accessKeyID, "AccessDenied", []need{{"iam:SimulatePrincipalPolicy", src}}); aerr != nil {
		writeQueryError(w, &apiError{403, aerr.code, aerr.message})
		return
	}
	stmts, _, ok := f.policyOf(src)
	if !ok || !strings.HasPrefix(src, "arn:aws:iam::") {
		writeQueryError(w, errf(404, "NoSuchEntity", "The principal %s cannot be found.", src))
		return
	}
	resource := "*"
	if len(resources) == 1 {
		resource = resources[0]
	}
	f.mu.Lock()
	everything := f.opts.Policies == nil
	f.mu.Unlock()
	var all []evaluationResult
	for _, a := range actions {
		if !strings.Contains(a, ":") {
			writeQueryError(w, errf(400, "InvalidInput", "action %q must include the service identifier, such as iam:CreateUser", a))
			return
		}
		all = append(all, evaluationResult{ActionName: a, ResourceName: resource, Decision: f.decision(stmts, everything, a, resource)})
	}
	start, _ := strconv.Atoi(form.Get("Marker"))
	maxItems := 100
	if m, err := strconv.Atoi(form.Get("MaxItems")); err == nil && m > 0 {
		maxItems = m
	}
	start = min(start, len(all))
	end := min(start+maxItems, len(all))
	res := simulateResult{EvaluationResults: all[start:end], IsTruncated: end < len(all)}
	if res.IsTruncated {
		res.Marker = strconv.Itoa(end)
	}
	writeXML(w, 200, simulateResponse{Xmlns: iamNS, Result: res, RequestID: "fake"})
}

// members reads a query-protocol list: Name.member.1, Name.member.2...
func members(form url.Values, name string) []string {
	var out []string
	for i := 1; ; i++ {
		v, ok := form[name+".member."+strconv.Itoa(i)]
		if !ok {
			return out
		}
		out = append(out, v...)
	}
}

type getCallerIdentityResponse struct {
	XMLName   xml.Name       `xml:"GetCallerIdentityResponse"`
	Xmlns     string         `xml:"xmlns,attr"`
	Result    callerIdentity `xml:"GetCallerIdentityResult"`
	RequestID string         `xml:"ResponseMetadata>RequestId"`
}

type callerIdentity struct {
	Arn     string `xml:"Arn"`
	UserID  string `xml:"UserId"`
	Account string `xml:"Account"`
}

type simulateResponse struct {
	XMLName   xml.Name       `xml:"SimulatePrincipalPolicyResponse"`
	Xmlns     string         `xml:"xmlns,attr"`
	Result    simulateResult `xml:"SimulatePrincipalPolicyResult"`
	RequestID string         `xml:"ResponseMetadata>RequestId"`
}

type simulateResult struct {
	IsTruncated       bool               `xml:"IsTruncated"`
	Marker            string             `xml:"Marker,omitempty"`
	EvaluationResults []evaluationResult `xml:"EvaluationResults>member"`
}

type evaluationResult struct {
	ActionName   string `xml:"EvalActionName"`
	ResourceName string `xml:"EvalResourceName"`
	Decision     string `xml:"EvalDecision"`
}

func writeXML(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "text/xml")
	w.WriteHeader(status)
	b, _ := xml.Marshal(v)
	_, _ = w.Write(b)
}

// writeQueryError answers a query-protocol error (IAM API reference,
// "Common errors": <ErrorResponse><Error><Type><Code><Message>).
func writeQueryError(w http.ResponseWriter, e *apiError) {
	typ := "Sender"
	if e.status >= 500 {
		typ = "Receiver"
	}
	w.Header().Set("Content-Type", "text/xml")
	w.WriteHeader(e.status)
	fmt.Fprintf(w, `<ErrorResponse xmlns="%s"><Error><Type>%s</Type><Code>%s</Code><Message>%s</Message></Error><RequestId>fake</RequestId></ErrorResponse>`,
		iamNS, typ, xmlEscape(e.code), xmlEscape(e.message))
}

func xmlEscape(s string) string {
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}
