// Package fakeaws is an in-process fake of the parts of AWS the aws
// provider uses, served over httptest so that the real SDK clients talk to
// it through their own serializers:
//
//   - ECS and SSM: AWS JSON 1.1, dispatched on X-Amz-Target
//     (AmazonEC2ContainerServiceV20141113.*, AmazonSSM.*).
//   - CloudWatch Logs: AWS JSON 1.1 (Logs_20140328.*); StartLiveTail
//     answers an AWS event stream (initial-response, sessionStart,
//     sessionUpdate...), see livetail.go.
//   - CloudWatch: Smithy RPC v2 CBOR (POST
//     /service/GraniteServiceVersion20100801/operation/<Op>), which is what
//     aws-sdk-go-v2/service/cloudwatch v1.75 sends; older SDKs used awsquery.
//   - EKS: REST-JSON, DescribeCluster only (GET /clusters/<name>) of the
//     clusters registered with AddEKSCluster; see eks.go.
//   - Secrets Manager (DescribeSecret) and ECR (DescribeImages), AWS JSON
//     1.1 (secretsmanager.*, AmazonEC2ContainerRegistry_V20150921.*):
//     the metadata a reference check reads; see refs.go.
//   - ECS Exec: ExecuteCommand (above), SSM TerminateSession, and the
//     Session Manager data channel, a WebSocket at /v1/data-channel/<id>
//     (unsigned: the session token authenticates it); see exec.go.
//
// Every request must carry a SigV4 Authorization header (its form is
// checked, the signature is not verified); others get 403
// MissingAuthenticationTokenException.
//
// State: clusters, task definitions (families and revisions), services with
// their deployments and events, tasks, SSM parameters, log groups and
// events. Deployments move IN_PROGRESS -> COMPLETED over successive
// DescribeServices calls (one reconcile step per call), or to FAILED with a
// CannotPullContainerError event when the primary task definition names an
// image listed in Options.BadImages. Tasks are started (PENDING, then
// RUNNING) and stopped to match the primary deployment's desired count;
// each task that reaches RUNNING resolves its environment and secrets
// (reading SSM at that moment, as the ECS agent does) and writes
// Options.StartupLine to its awslogs stream.
package fakeaws

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"time"
)

// Options configures a fake.
type Options struct {
	Region   string   // default us-east-1
	Account  string   // default 123456789012
	Clusters []string // clusters that exist; default ["default"]
	// SearchDelay hides a log event from FilterLogEvents until that long
	// after its ingestion, as CloudWatch Logs indexes events a little
	// after it takes them (live tail delivers them at once).
	SearchDelay time.Duration
	// EmptyPages makes every FilterLogEvents query answer that many pages
	// without events, each with a nextToken, before its first events:
	// FilterLogEvents "can return empty results while there are more log
	// events available through the token" (CloudWatch Logs API reference,
	// FilterLogEvents; aws-sdk-go-v2 api_op_FilterLogEvents.go).
	EmptyPages int
	// BadImages fail their deployment with CannotPullContainerError.
	BadImages []string
	// StartupLine is logged by every task when it reaches RUNNING.
	StartupLine string
	// PendingSteps is how many reconcile steps (DescribeServices calls) a
	// new task stays PENDING before it runs; default 1.
	PendingSteps int
	// Throttle, when > 0, answers that many next requests with
	// ThrottlingException (to test retry exhaustion).
	Throttle int
	// Caller is the identity (an IAM user or role ARN, or an STS
	// assumed-role session ARN) of requests signed with any key but the
	// web-identity one; default DefaultCaller. See iam.go.
	Caller string
	// Policies, when not nil, are the identity-based policies of IAM
	// users and roles (ARN -> statements): every signed request is
	// authorised against its signer's, and SimulatePrincipalPolicy reads
	// them. Nil allows everything. See iam.go.
	Policies map[string][]Statement
}

// Fake is the fake AWS. Its methods are safe for concurrent use.
type Fake struct {
	opts Options
	srv  *httptest.Server
	mu   sync.Mutex
	now  func() time.Time
	// violations: requests the SDK's validation refused (contract.go).
	violations []string
	// filtered counts the events FilterLogEvents returned.
	filtered int
	seq      int
	tds      map[string][]*taskDef // family -> revisions (index rev-1)
	svcs     map[string]*service   // cluster/name
	tasks    map[string]*task      // arn
	params   map[string]*param     // name
	logs     map[string][]*logEvent
	// Requests counts requests per operation, for tests.
	requests map[string]int
	// AccessKeys records the access key id of every signed request.
	accessKeys                    map[string]int
	stsRole, stsToken, stsSession string
	liveTail                      LiveTailOptions // see livetail.go
	sessions                      int
	eks                           map[string]*eksCluster // name; see eks.go
	exec                          execState              // ECS Exec sessions; see exec.go
	secrets                       map[string]*secret     // Secrets Manager, by name; see refs.go
	repos                         map[string][]*image    // ECR repositories of the fake's account; see refs.go
}

// New starts a fake; Close it when done.
func New(opts Options) *Fake {
	if opts.Region == "" {
		opts.Region = "us-east-1"
	}
	if opts.Account == "" {
		opts.Account = "123456789012"
	}
	if len(opts.Clusters) == 0 {
		opts.Clusters = []string{"default"}
	}
	f := &Fake{opts: opts, now: time.Now, tds: map[string][]*taskDef{}, svcs: map[string]*service{},
		tasks: map[string]*task{}, params: map[string]*param{}, logs: map[string][]*logEvent{}, requests: map[string]int{}, accessKeys: map[string]int{}}
	f.srv = httptest.NewServer(f)
	return f
}

// URL is the endpoint to use as the clients' BaseEndpoint.
func (f *Fake) URL() string { return f.srv.URL }

// Close stops the server.
func (f *Fake) Close() { f.srv.Close() }

// Requests returns how many requests op received ("ecs.DescribeServices").
func (f *Fake) Requests(op string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.requests[op]
}

// apiError is an error answer.
type apiError struct {
	status  int
	code    string
	message string
}

func errf(status int, code, format string, args ...any) *apiError {
	return &apiError{status, code, fmt.Sprintf(format, args...)}
}

// ServeHTTP dispatches a request to its service.
func (f *Fake) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if strings.HasPrefix(r.URL.Path, DataChannelPath) {
		f.serveDataChannel(w, r) // ECS Exec's Session Manager WebSocket; see exec.go
		return
	}
	body, _ := io.ReadAll(r.Body)
	target := r.Header.Get("X-Amz-Target")
	cbor := strings.HasPrefix(r.URL.Path, "/service/GraniteServiceVersion20100801/operation/")
	if target == "" && !cbor && strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
		if form, err := url.ParseQuery(string(body)); err == nil && f.serveSTS(w, form) {
			return
		}
	}
	if !validAuth(r.Header.Get("Authorization")) {
		e := errf(http.StatusForbidden, "MissingAuthenticationTokenException", "Missing Authentication Token")
		if cbor {
			writeCBORError(w, e)
		} else {
			writeJSONError(w, e)
		}
		return
	}
	key := accessKey(r.Header.Get("Authorization"))
	if target == "" && !cbor && strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
		if form, err := url.ParseQuery(string(body)); err == nil && f.serveQuery(w, form, key) {
			return // STS GetCallerIdentity, IAM SimulatePrincipalPolicy: iam.go
		}
	}
	f.mu.Lock()
	f.accessKeys[key]++
	throttle := f.opts.Throttle > 0
	if throttle {
		f.opts.Throttle--
	}
	f.mu.Unlock()
	if cbor {
		op := strings.TrimPrefix(r.URL.Path, "/service/GraniteServiceVersion20100801/operation/")
		f.count("cloudwatch." + op)
		if throttle {
			writeCBORError(w, errf(400, "ThrottlingException", "Rate exceeded"))
			return
		}
		// GetMetricData has no resource-level permissions (Service
		// Authorization Reference, CloudWatch).
		if aerr := f.authorize(key, "AccessDeniedException", []need{{"cloudwatch:" + op, "*"}}); aerr != nil {
			writeCBORError(w, aerr)
			return
		}
		if aerr := f.sdkValidateCBOR(op, body); aerr != nil { // contract.go
			writeCBORError(w, aerr)
			return
		}
		f.serveCloudWatch(w, r, op, body)
		return
	}
	if target == "" && strings.HasPrefix(r.URL.Path, "/clusters/") {
		name, sub, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/clusters/"), "/")
		if r.Method == http.MethodGet && sub == "" && name != "" {
			b, _ := json.Marshal(map[string]string{"Name": name})
			if aerr := f.sdkValidate("eks", "DescribeCluster", b); aerr != nil { // contract.go
				writeRESTError(w, aerr, nil)
				return
			}
		}
		if aerr := f.authorize(key, "AccessDeniedException", []need{{"eks:DescribeCluster",
			"arn:aws:eks:" + f.opts.Region + ":" + f.opts.Account + ":cluster/" + name}}); aerr != nil {
			writeRESTError(w, &apiError{http.StatusForbidden, aerr.code, aerr.message}, nil)
			return
		}
		f.serveEKS(w, r, throttle)
		return
	}
	prefix, op, _ := strings.Cut(target, ".")
	var handler func(op string, in map[string]any) (any, *apiError)
	var name string
	switch prefix {
	case "AmazonEC2ContainerServiceV20141113":
		handler, name = f.ecs, "ecs"
	case "AmazonSSM":
		handler, name = f.ssmWithExec, "ssm"
	case "Logs_20140328":
		handler, name = f.cwlogs, "logs"
	case "secretsmanager":
		handler, name = f.secretsManager, "secretsmanager" // refs.go
	case "AmazonEC2ContainerRegistry_V20150921":
		handler, name = f.ecrAPI, "ecr" // refs.go
	default:
		writeJSONError(w, errf(400, "UnknownOperationException", "unknown target %q", target))
		return
	}
	f.count(name + "." + op)
	if ct := r.Header.Get("Content-Type"); ct != "application/x-amz-json-1.1" {
		writeJSONError(w, errf(400, "SerializationException", "content type %q, want application/x-amz-json-1.1", ct))
		return
	}
	if throttle {
		writeJSONError(w, errf(400, "ThrottlingException", "Rate exceeded"))
		return
	}
	in := map[string]any{}
	if len(body) > 0 {
		if err := json.Unmarshal(body, &in); err != nil {
			writeJSONError(w, errf(400, "SerializationException", "%v", err))
			return
		}
	}
	if aerr := f.sdkValidate(name, op, body); aerr != nil {
		writeJSONError(w, aerr)
		return
	}
	if aerr := f.authorize(key, "AccessDeniedException", f.needsOf(name, op, in)); aerr != nil {
		writeJSONError(w, aerr)
		return
	}
	if target == "Logs_20140328.StartLiveTail" {
		f.serveLiveTail(w, r, in)
		return
	}
	out, aerr := handler(op, in)
	if aerr != nil {
		writeJSONError(w, aerr)
		return
	}
	b, _ := json.Marshal(out)
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.Header().Set("X-Amzn-Requestid", "fake-request")
	_, _ = w.Write(b)
}

func (f *Fake) count(op string) {
	f.mu.Lock()
	f.requests[op]++
	f.mu.Unlock()
}

// validAuth checks the form of a SigV4 Authorization header.
func validAuth(h string) bool {
	rest, ok := strings.CutPrefix(h, "AWS4-HMAC-SHA256 ")
	return ok && strings.Contains(rest, "Credential=") && strings.Contains(rest, "SignedHeaders=") &&
		strings.Contains(rest, "Signature=")
}

func accessKey(h string) string {
	_, rest, _ := strings.Cut(h, "Credential=")
	k, _, _ := strings.Cut(rest, "/")
	return k
}

// SignedWith reports how many requests were signed with access key id.
func (f *Fake) SignedWith(key string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.accessKeys[key]
}

func writeJSONError(w http.ResponseWriter, e *apiError) {
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.Header().Set("X-Amzn-Errortype", e.code)
	w.WriteHeader(e.status)
	b, _ := json.Marshal(map[string]string{"__type": e.code, "message": e.message})
	_, _ = w.Write(b)
}

// helpers over decoded JSON

func str(m map[string]any, k string) string { s, _ := m[k].(string); return s }

func num(m map[string]any, k string) (float64, bool) { v, ok := m[k].(float64); return v, ok }

func boolean(m map[string]any, k string) bool { b, _ := m[k].(bool); return b }

func obj(m map[string]any, k string) map[string]any { o, _ := m[k].(map[string]any); return o }

func list(m map[string]any, k string) []any { l, _ := m[k].([]any); return l }

func strs(m map[string]any, k string) []string {
	var out []string
	for _, v := range list(m, k) {
		if s, ok := v.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

func epoch(t time.Time) float64 { return float64(t.UnixNano()) / 1e9 }
