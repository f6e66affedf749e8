// Package fakegcp is an in-process Google Cloud for the gcp provider's
// tests: gRPC servers on a bufconn listener implementing the generated
// server interfaces of Cloud Run Admin v2 (Services, Revisions and the
// long-running Operations), Secret Manager, Cloud Monitoring
// (ListTimeSeries), Cloud Logging (ListLogEntries, TailLogEntries,
// WriteLogEntries) and the GKE cluster manager (GetCluster, container.go).
// The real client libraries connect to it through option.WithGRPCConn.
// OAuthServer (oauth.go) is a Google OAuth 2.0 token endpoint for the
// service-account (JWT bearer) flow, over HTTP. One file per service:
// run.go (Cloud Run), secrets.go, monitoring.go, logging.go, container.go;
// contract.go checks every request against the API definitions.
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
//   - IAM (iam.go): every request needs the permission its method
//     documents; Deny takes permissions away on the project, GrantOn binds
//     them on one resource; the testIamPermissions methods answer over
//     gRPC (Cloud Run, Secret Manager) and REST (Resource Manager v3, IAM
//     v1; RESTOptions).
//   - BreakTails ends open TailLogEntries streams (EOF or an error);
//     SuppressTail replaces the next tail batch by SuppressionInfo;
//     BeforeTail runs a hook as a tail stream starts.
package fakegcp

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"time"

	"cloud.google.com/go/container/apiv1/containerpb"
	"cloud.google.com/go/logging/apiv2/loggingpb"
	"cloud.google.com/go/longrunning/autogen/longrunningpb"
	"cloud.google.com/go/monitoring/apiv3/v2/monitoringpb"
	"cloud.google.com/go/run/apiv2/runpb"
	"cloud.google.com/go/secretmanager/apiv1/secretmanagerpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"
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
	rest *httptest.Server // Resource Manager and IAM (iam.go)

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
	violations []string                   // requests the contract check refused (contract.go)
	logReads   []time.Time                // ListLogEntries calls of the last minute
	tails      int                        // open TailLogEntries streams
	denied     map[string]bool            // Deny: permissions the project does not grant
	granted    map[string]map[string]bool // GrantOn: resource → permissions bound on it
}

// New starts the fake.
func New() *Server {
	f := &Server{Steps: 2, StartupLine: "container started", MetricLatency: 180 * time.Second, LogReadQuota: 60, MaxTailSessions: 10, DefaultServiceAccount: "123456789012-compute@developer.gserviceaccount.com", lis: bufconn.Listen(1 << 20),
		badImages: map[string]string{}, services: map[string]*service{}, secrets: map[string]*secret{},
		ops: map[string]*longrunningpb.Operation{}, fail: map[string][]error{}, calls: map[string]int{}, logCond: make(chan struct{})}
	f.srv = grpc.NewServer(grpc.ChainUnaryInterceptor(f.contractInterceptor, f.iamInterceptor))
	f.rest = httptest.NewServer(http.HandlerFunc(f.serveREST))
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
	f.rest.Close()
}

// Fail makes the next call of method ("GetService", "AddSecretVersion"...)
// return err.
func (f *Server) Fail(method string, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fail[method] = append(f.fail[method], err)
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
