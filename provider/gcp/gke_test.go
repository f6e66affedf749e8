package gcp_test

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"maps"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	gauthcreds "cloud.google.com/go/auth/credentials"
	"cloud.google.com/go/container/apiv1/containerpb"
	"google.golang.org/api/option"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8sclient "k8s.io/client-go/kubernetes"

	"github.com/alphaswarm/controller/credentials"
	"github.com/alphaswarm/controller/internal/k8stest"
	"github.com/alphaswarm/controller/internal/testkit"
	"github.com/alphaswarm/controller/provider"
	"github.com/alphaswarm/controller/provider/gcp"
	"github.com/alphaswarm/controller/provider/gcp/fakegcp"
	"github.com/alphaswarm/controller/provider/kubernetes"
	"github.com/alphaswarm/controller/provider/kubernetes/kubetest"
	"github.com/alphaswarm/controller/provider/providertest"
	"github.com/alphaswarm/controller/workload"
)

// TestMain stops the Kubernetes control plane the GKE tests share (the
// Cloud Run tests never start it).
func TestMain(m *testing.M) { k8stest.Main(m) }

const (
	gkeProject  = "demo-project"
	gkeLocation = "europe-west1"
	gkeCluster  = "prod-cluster"
	gkeTarget   = "prod"
)

// gkeFakes is Google Cloud for GKE mode: the GKE API (fakegcp over
// bufconn) and the OAuth 2.0 token endpoint, with a service-account key
// file whose token_uri points at the latter.
type gkeFakes struct {
	api     *fakegcp.Server
	oauth   *fakegcp.OAuthServer
	keyFile string
}

func newGKEFakes(t testing.TB, tokenLifetime time.Duration) *gkeFakes {
	t.Helper()
	api := fakegcp.New()
	t.Cleanup(api.Close)
	o, err := fakegcp.NewOAuth(gkeProject)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(o.Close)
	o.Lifetime = tokenLifetime
	keyFile := filepath.Join(t.TempDir(), "service-account.json")
	if err := os.WriteFile(keyFile, o.ServiceAccountJSON(gkeProject), 0o600); err != nil {
		t.Fatal(err)
	}
	return &gkeFakes{api: api, oauth: o, keyFile: keyFile}
}

// clusterOf is the GKE view of the shared control plane: its API
// server's address as the endpoint (GKE gives an IP without scheme) and
// its CA, base64-encoded.
func clusterOf(c *k8stest.Cluster) *containerpb.Cluster {
	return &containerpb.Cluster{Name: gkeCluster, Location: gkeLocation, Status: containerpb.Cluster_RUNNING,
		Endpoint:   strings.TrimPrefix(c.Server, "https://"),
		MasterAuth: &containerpb.MasterAuth{ClusterCaCertificate: base64.StdEncoding.EncodeToString(c.CAData)}}
}

func gkeConfig(extra map[string]any) provider.TargetConfig {
	opts := map[string]any{"mode": "gke", "project": gkeProject, "location": gkeLocation, "cluster": gkeCluster}
	for k, v := range extra {
		if v == nil {
			delete(opts, k)
			continue
		}
		opts[k] = v
	}
	raw := map[string]json.RawMessage{}
	for k, v := range opts {
		b, _ := json.Marshal(v)
		raw[k] = b
	}
	return provider.TargetConfig{Name: gkeTarget, Provider: gcp.Name, Options: raw}
}

// open opens the target in GKE mode: the GKE API client talks to the fake
// over bufconn, the cluster token comes from the key file.
func (g *gkeFakes) open(t testing.TB, extra map[string]any) *gcp.GKEProvider {
	t.Helper()
	creds := credentials.FromMap(map[string]string{"GOOGLE_APPLICATION_CREDENTIALS": g.keyFile})
	p, err := gcp.OpenGKEWithClientOptions(context.Background(), gkeConfig(extra), creds,
		option.WithGRPCConn(g.api.Conn()), option.WithoutAuthentication())
	if err != nil {
		t.Fatalf("open in gke mode: %v", err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p
}

// tokenLog is what the API server's token webhook decided.
type tokenLog struct {
	mu       sync.Mutex
	accepted map[string]int // token → requests
	rejected []string
}

func (l *tokenLog) distinct() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Sorted(maps.Keys(l.accepted))
}

func (l *tokenLog) rejections() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.rejected)
}

// trustTokens makes the API server accept exactly the unexpired tokens
// the fake token endpoint issued with the cloud-platform scope, as the
// service account, in group system:masters; it logs every decision.
func (g *gkeFakes) trustTokens(t testing.TB, c *k8stest.Cluster) *tokenLog {
	l := &tokenLog{accepted: map[string]int{}}
	c.AddTokenAuthenticator(t, func(_ context.Context, token string) (string, []string, bool) {
		it, ok := g.oauth.Valid(token)
		ok = ok && slices.Contains(it.Scopes, "https://www.googleapis.com/auth/cloud-platform")
		l.mu.Lock()
		defer l.mu.Unlock()
		if !ok {
			l.rejected = append(l.rejected, token)
			return "", nil, false
		}
		l.accepted[token]++
		return it.Email, []string{"system:masters"}, true
	})
	return l
}

// settleCapabilities waits until the kubernetes provider underneath has
// found out that this control plane serves no metrics.k8s.io, so that the
// capability matrix is final.
func settleCapabilities(t *testing.T, p provider.Explainer) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for p.UnsupportedReason(provider.OpStreamMetrics) == "" {
		if time.Now().After(deadline) {
			t.Fatal("stream_metrics still declared supported after 30s on a cluster without Metrics Server")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestGKEConformance runs the kubernetes providertest scenarios through
// the gcp provider in GKE mode: the endpoint and CA come from the fake
// GKE API, every request to the real API server carries an access token
// from the fake token endpoint, which issues tokens living 3 seconds, and
// the API server accepts only unexpired ones.
func TestGKEConformance(t *testing.T) {
	c := k8stest.Start(t)
	ns := c.Namespace(t)
	g := newGKEFakes(t, 3*time.Second)
	g.api.AddCluster(gkeProject, clusterOf(c))
	seen := g.trustTokens(t, c)
	p := g.open(t, map[string]any{"namespace": ns})
	if err := p.Ping(testkit.Context(t, time.Minute)); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	settleCapabilities(t, p)
	began := time.Now()
	providertest.Run(t, kubetest.Harness(c, ns, gkeTarget, p))

	if n := g.api.Calls("GetCluster"); n != 1 {
		t.Errorf("GetCluster called %d times, want 1 (the cluster is read once)", n)
	}
	if r := seen.rejections(); len(r) > 0 {
		t.Errorf("the API server refused %d tokens the provider sent (expired or unknown)", len(r))
	}
	tokens := seen.distinct()
	if len(tokens) < 2 {
		t.Errorf("the API server saw %d distinct tokens over %v, want several: 3-second tokens must be refreshed", len(tokens), time.Since(began).Round(time.Second))
	}
	issued := g.oauth.Issued()
	for _, tok := range tokens {
		if !slices.ContainsFunc(issued, func(it fakegcp.IssuedToken) bool { return it.Value == tok }) {
			t.Errorf("the API server accepted a token the token endpoint never issued")
		}
	}
	for _, it := range issued {
		if it.Email != g.oauth.Email() || !slices.Equal(slices.Sorted(slices.Values(it.Scopes)), slices.Sorted(slices.Values(gcp.GKEScopes))) {
			t.Errorf("token issued to %s with scopes %v, want the key file's account with %v", it.Email, it.Scopes, gcp.GKEScopes)
			break
		}
	}
	t.Logf("%d tokens issued, %d distinct tokens used by the API server, %d refused by the token endpoint", len(issued), len(tokens), g.oauth.Refused())
}

// TestGKETokenReusedThenRefreshed: a token is reused while it has more
// than GKETokenEarlyRefresh left, and replaced once it has less: tokens
// living GKETokenEarlyRefresh+3s are good for 3 seconds.
func TestGKETokenReusedThenRefreshed(t *testing.T) {
	c := k8stest.Start(t)
	ns := c.Namespace(t)
	g := newGKEFakes(t, gcp.GKETokenEarlyRefresh+3*time.Second)
	g.api.AddCluster(gkeProject, clusterOf(c))
	seen := g.trustTokens(t, c)
	p := g.open(t, map[string]any{"namespace": ns})
	ctx := testkit.Context(t, time.Minute)
	for i := range 3 {
		if err := p.Ping(ctx); err != nil {
			t.Fatalf("Ping %d: %v", i, err)
		}
	}
	issued := g.oauth.Issued()
	if len(issued) != 1 {
		t.Fatalf("%d tokens issued for the first requests, want 1 reused", len(issued))
	}
	if got := seen.distinct(); !slices.Equal(got, []string{issued[0].Value}) {
		t.Fatalf("the API server saw %d distinct tokens, want the one issued", len(got))
	}
	time.Sleep(time.Until(issued[0].Issued.Add(3*time.Second + 200*time.Millisecond)))
	if err := p.Ping(ctx); err != nil {
		t.Fatalf("Ping after the refresh point: %v", err)
	}
	issued = g.oauth.Issued()
	if len(issued) != 2 {
		t.Fatalf("%d tokens issued after the first one entered its refresh window, want 2", len(issued))
	}
	if got := seen.distinct(); len(got) != 2 || !slices.Contains(got, issued[1].Value) {
		t.Fatalf("the API server saw %d distinct tokens, want both issued, the new one included", len(got))
	}
	if r := seen.rejections(); len(r) > 0 {
		t.Fatalf("the API server refused %d tokens", len(r))
	}
}

// TestGKETokenRefused: when the token endpoint refuses the key, operations
// fail unauthenticated, naming the endpoint's error, and nothing reaches
// the API server; once it accepts again, so do the operations.
func TestGKETokenRefused(t *testing.T) {
	c := k8stest.Start(t)
	ns := c.Namespace(t)
	g := newGKEFakes(t, time.Hour)
	g.api.AddCluster(gkeProject, clusterOf(c))
	seen := g.trustTokens(t, c)
	g.oauth.Refuse("Invalid JWT Signature.")
	p := g.open(t, map[string]any{"namespace": ns})
	ctx := testkit.Context(t, time.Minute)
	_, err := p.Status(ctx, "web")
	if workload.CodeOf(err) != workload.Unauthenticated || !strings.Contains(err.Error(), "invalid_grant: Invalid JWT Signature.") {
		t.Fatalf("Status with a refused key = %v (%s), want unauthenticated naming invalid_grant", err, workload.CodeOf(err))
	}
	if we := workload.AsError(err); we.Provider != gcp.Name || !provider.NothingChanged(err) {
		t.Fatalf("error %+v: want provider gcp and a code promising nothing changed", we)
	}
	if n := len(seen.distinct()) + len(seen.rejections()); n != 0 {
		t.Fatalf("the API server was asked about %d tokens while the token endpoint refused", n)
	}
	g.oauth.Refuse("")
	if _, err := p.Status(ctx, "web"); workload.CodeOf(err) != workload.NotFound {
		t.Fatalf("Status once the key is accepted = %v, want not_found (no such service)", err)
	}
}

// TestGKEClusterErrors: Open never calls Google Cloud in the foreground,
// so a target whose cluster cannot be read opens fine; operations report
// why, with the GKE API's status mapped, and nothing is cached: each
// operation tries again.
func TestGKEClusterErrors(t *testing.T) {
	ca := base64.StdEncoding.EncodeToString([]byte("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"))
	cases := []struct {
		name     string
		cluster  *containerpb.Cluster // nil: none
		inject   error
		opts     map[string]any
		wantCode workload.Code
		wantMsg  string
	}{
		{name: "no such cluster", wantCode: workload.NotFound,
			wantMsg: "GKE cluster projects/demo-project/locations/europe-west1/clusters/prod-cluster"},
		{name: "permission denied", cluster: &containerpb.Cluster{Name: gkeCluster, Location: gkeLocation, Endpoint: "127.0.0.1:1", Status: containerpb.Cluster_RUNNING},
			inject:   status.Error(codes.PermissionDenied, "Required \"container.clusters.get\" permission(s) for \"projects/demo-project/locations/europe-west1/clusters/prod-cluster\"."),
			wantCode: workload.PermissionDenied, wantMsg: "container.clusters.get"},
		{name: "unauthenticated", inject: status.Error(codes.Unauthenticated, "Request had invalid authentication credentials."),
			wantCode: workload.Unauthenticated, wantMsg: "invalid authentication credentials"},
		{name: "still provisioning", cluster: &containerpb.Cluster{Name: gkeCluster, Location: gkeLocation, Status: containerpb.Cluster_PROVISIONING},
			wantCode: workload.Unavailable, wantMsg: "the cluster is PROVISIONING and has no endpoint yet"},
		{name: "no private endpoint", cluster: &containerpb.Cluster{Name: gkeCluster, Location: gkeLocation, Endpoint: "34.77.120.15", Status: containerpb.Cluster_RUNNING,
			MasterAuth: &containerpb.MasterAuth{ClusterCaCertificate: ca}}, opts: map[string]any{"endpoint": "private"},
			wantCode: workload.InvalidArgument, wantMsg: "the cluster has no private endpoint"},
		{name: "CA not base64", cluster: &containerpb.Cluster{Name: gkeCluster, Location: gkeLocation, Endpoint: "34.77.120.15", Status: containerpb.Cluster_RUNNING,
			MasterAuth: &containerpb.MasterAuth{ClusterCaCertificate: "-----BEGIN CERTIFICATE-----"}},
			wantCode: workload.ProviderError, wantMsg: "clusterCaCertificate"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := newGKEFakes(t, time.Hour)
			if tc.cluster != nil {
				g.api.AddCluster(gkeProject, tc.cluster)
			}
			if tc.inject != nil {
				// Three times: Status and Ping may each make an
				// attempt besides the one Open starts in the background.
				for range 3 {
					g.api.Fail("GetCluster", tc.inject)
				}
			}
			p := g.open(t, tc.opts)
			ctx := testkit.Context(t, 30*time.Second)
			_, err := p.Status(ctx, "web")
			we := workload.AsError(err)
			if we.Code != tc.wantCode || !strings.Contains(we.Message, tc.wantMsg) || we.Provider != gcp.Name {
				t.Fatalf("Status = %v, want %s (gcp) containing %q", err, tc.wantCode, tc.wantMsg)
			}
			before := g.api.Calls("GetCluster")
			if err := p.Ping(ctx); workload.CodeOf(err) != tc.wantCode {
				t.Fatalf("Ping = %v, want %s again", err, tc.wantCode)
			}
			if g.api.Calls("GetCluster") <= before {
				t.Fatal("the next operation did not read the cluster again: a failure was cached")
			}
			if len(g.oauth.Issued()) != 0 {
				t.Fatal("a cluster token was requested although the cluster was never reached")
			}
		})
	}
}

// TestGKEClusterAppearsLater: a target opened before its cluster exists
// works as soon as GetCluster finds it, and the cluster is then read no
// more.
func TestGKEClusterAppearsLater(t *testing.T) {
	c := k8stest.Start(t)
	ns := c.Namespace(t)
	g := newGKEFakes(t, time.Hour)
	g.trustTokens(t, c)
	p := g.open(t, map[string]any{"namespace": ns})
	ctx := testkit.Context(t, time.Minute)
	if err := p.Ping(ctx); workload.CodeOf(err) != workload.NotFound {
		t.Fatalf("Ping before the cluster exists = %v, want not_found", err)
	}
	g.api.AddCluster(gkeProject, clusterOf(c))
	if err := p.Ping(ctx); err != nil {
		t.Fatalf("Ping once the cluster exists: %v", err)
	}
	n := g.api.Calls("GetCluster")
	for range 3 {
		if _, err := p.Status(ctx, "web"); workload.CodeOf(err) != workload.NotFound || !strings.Contains(err.Error(), "unknown to this target") {
			t.Fatalf("Status of an absent service = %v, want the kubernetes provider's not_found", err)
		}
	}
	if got := g.api.Calls("GetCluster"); got != n {
		t.Fatalf("GetCluster called %d more times after the cluster was reached", got-n)
	}
}

// TestGKEEndpointChoice: options.endpoint picks which of the cluster's
// endpoints the provider dials; the others point nowhere.
func TestGKEEndpointChoice(t *testing.T) {
	c := k8stest.Start(t)
	ns := c.Namespace(t)
	apiAddr := strings.TrimPrefix(c.Server, "https://")
	const nowhere = "127.0.0.1:1" // connection refused
	dnsName := strings.Replace(apiAddr, "127.0.0.1", "localhost", 1)
	ca := base64.StdEncoding.EncodeToString(c.CAData)
	mk := func(endpoint, ipPrivate, legacyPrivate, dns string) *containerpb.Cluster {
		return &containerpb.Cluster{Name: gkeCluster, Location: gkeLocation, Status: containerpb.Cluster_RUNNING, Endpoint: endpoint,
			MasterAuth:           &containerpb.MasterAuth{ClusterCaCertificate: ca},
			PrivateClusterConfig: &containerpb.PrivateClusterConfig{PrivateEndpoint: legacyPrivate},
			ControlPlaneEndpointsConfig: &containerpb.ControlPlaneEndpointsConfig{
				IpEndpointsConfig: &containerpb.ControlPlaneEndpointsConfig_IPEndpointsConfig{PrivateEndpoint: ipPrivate},
				DnsEndpointConfig: &containerpb.ControlPlaneEndpointsConfig_DNSEndpointConfig{Endpoint: dns}}}
	}
	cases := []struct {
		name     string
		endpoint string
		cluster  *containerpb.Cluster
		wantErr  string // "" for success
	}{
		{"default is endpoint", "", mk(apiAddr, nowhere, nowhere, nowhere), ""},
		{"default named", "default", mk(apiAddr, nowhere, nowhere, nowhere), ""},
		{"default does not fall back", "", mk(nowhere, apiAddr, apiAddr, apiAddr), "unreachable"},
		{"private from ipEndpointsConfig", "private", mk(nowhere, apiAddr, nowhere, nowhere), ""},
		{"private from privateClusterConfig", "private", mk(nowhere, "", apiAddr, nowhere), ""},
		// The DNS endpoint is served with a publicly trusted certificate:
		// the cluster CA is not used for it, so this control plane's
		// certificate is refused.
		{"dns does not trust the cluster CA", "dns", mk(nowhere, nowhere, nowhere, dnsName), "signed by unknown authority"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := newGKEFakes(t, time.Hour)
			g.api.AddCluster(gkeProject, tc.cluster)
			g.trustTokens(t, c)
			p := g.open(t, map[string]any{"namespace": ns, "endpoint": tc.endpoint})
			err := p.Ping(testkit.Context(t, 30*time.Second))
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("Ping: %v", err)
			case tc.wantErr != "" && (workload.CodeOf(err) != workload.Unavailable || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("Ping = %v, want unavailable containing %q", err, tc.wantErr)
			}
		})
	}
}

// TestGKEDelegation: the GKE provider offers exactly the kubernetes
// provider's capabilities, reports itself as gcp in statuses and errors,
// and Close closes the kubernetes provider underneath (its Watch ends
// saying so).
func TestGKEDelegation(t *testing.T) {
	c := k8stest.Start(t)
	ns := c.Namespace(t)
	g := newGKEFakes(t, time.Hour)
	g.api.AddCluster(gkeProject, clusterOf(c))
	g.trustTokens(t, c)
	p := g.open(t, map[string]any{"namespace": ns})
	ctx := testkit.Context(t, 2*time.Minute)

	kp, err := kubernetes.New(ctx, gkeTarget, c.RESTConfig, kubernetes.Options{Namespace: ns})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = kp.Close() })
	if err := p.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	settleCapabilities(t, p)
	settleCapabilities(t, kp)
	if got, want := provider.Capabilities(p), provider.Capabilities(kp); !reflect.DeepEqual(got, want) {
		t.Errorf("capabilities through gke mode:\n%+v\nkubernetes provider's:\n%+v", got, want)
	}
	implements := []struct {
		name string
		is   func(any) bool
	}{
		{"Restarter", func(v any) bool { _, ok := v.(provider.Restarter); return ok }},
		{"LogTailer", func(v any) bool { _, ok := v.(provider.LogTailer); return ok }},
		{"Execer", func(v any) bool { _, ok := v.(provider.Execer); return ok }},
		{"Lister", func(v any) bool { _, ok := v.(provider.Lister); return ok }},
		{"Watcher", func(v any) bool { _, ok := v.(provider.Watcher); return ok }},
		{"Pinger", func(v any) bool { _, ok := v.(provider.Pinger); return ok }},
		{"Explainer", func(v any) bool { _, ok := v.(provider.Explainer); return ok }},
		{"PermissionExplainer", func(v any) bool { _, ok := v.(provider.PermissionExplainer); return ok }},
		{"Named", func(v any) bool { _, ok := v.(provider.Named); return ok }},
		{"io.Closer", func(v any) bool { _, ok := v.(io.Closer); return ok }},
	}
	for _, i := range implements {
		if i.is(p) != i.is(kp) {
			t.Errorf("%s: gke mode %v, kubernetes provider %v", i.name, i.is(p), i.is(kp))
		}
	}
	if name := provider.NameOf(p); name != gcp.Name {
		t.Errorf("NameOf = %q, want gcp", name)
	}
	if p.Namespace() != ns || p.Cluster() != fakegcp.ClusterName(gkeProject, gkeLocation, gkeCluster) {
		t.Errorf("Namespace %q, Cluster %q", p.Namespace(), p.Cluster())
	}

	// Statuses and errors say gcp.
	wctx, wcancel := context.WithCancel(ctx)
	defer wcancel()
	type event struct {
		st  workload.DeploymentStatus
		err error
	}
	events := make(chan event, 64)
	go func() {
		defer close(events)
		for st, err := range p.Watch(wctx) {
			events <- event{st, err}
			if err != nil {
				return
			}
		}
	}()
	st, err := p.Start(ctx, workload.DeploymentSpec{Name: "web", Image: kubetest.Image, Replicas: 1})
	if err != nil || st.Phase != workload.Running || st.Provider != gcp.Name {
		t.Fatalf("Start = %s provider %q, %v; want Running, gcp", st.Phase, st.Provider, err)
	}
	list, err := p.List(ctx)
	if err != nil || len(list) != 1 || list[0].Provider != gcp.Name {
		t.Fatalf("List = %+v, %v; want web, provider gcp", list, err)
	}
	_, err = p.Scale(ctx, "absent", 1)
	if we := workload.AsError(err); we.Code != workload.NotFound || we.Provider != gcp.Name {
		t.Fatalf("Scale absent = %+v, want not_found from gcp", we)
	}
	sawWeb := false
	for !sawWeb {
		select {
		case e := <-events:
			if e.err != nil {
				t.Fatalf("Watch: %v", e.err)
			}
			if e.st.Name == "web" {
				sawWeb = true
				if e.st.Provider != gcp.Name {
					t.Fatalf("Watch status provider %q, want gcp", e.st.Provider)
				}
			}
		case <-ctx.Done():
			t.Fatal("Watch yielded nothing for web")
		}
	}

	// Close ends the kubernetes provider underneath: the Watch ends with
	// its "closed" error, now from gcp, although its context lives on.
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	var last error
	for e := range events {
		last = e.err
	}
	if we := workload.AsError(last); last == nil || we.Code != workload.Unavailable || we.Provider != gcp.Name ||
		!strings.Contains(we.Message, "kubernetes provider is closed") {
		t.Fatalf("Watch after Close ended with %v, want unavailable from gcp saying the kubernetes provider is closed", last)
	}
	if _, err := p.Status(ctx, "web"); workload.CodeOf(err) != workload.Unavailable || !strings.Contains(err.Error(), "closed") {
		t.Fatalf("Status after Close = %v, want unavailable: closed", err)
	}
	if err := p.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

// TestGKEOpenOptions: options are decoded strictly per mode, and every
// missing or malformed one is invalid_argument with its field path, all
// at once; a missing or unusable credentials file is unauthenticated.
// None of these calls Google Cloud.
func TestGKEOpenOptions(t *testing.T) {
	dir := t.TempDir()
	sa := filepath.Join(dir, "sa.json")
	o, err := fakegcp.NewOAuth(gkeProject)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(o.Close)
	if err := os.WriteFile(sa, o.ServiceAccountJSON(gkeProject), 0o600); err != nil {
		t.Fatal(err)
	}
	user := filepath.Join(dir, "user.json")
	if err := os.WriteFile(user, []byte(`{"type":"authorized_user","client_id":"x","client_secret":"y","refresh_token":"z"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	withSA := map[string]string{"GOOGLE_APPLICATION_CREDENTIALS": sa}
	p := "targets.prod.options."
	cases := []struct {
		name       string
		opts       map[string]any // over the valid gke options; nil values delete
		env        map[string]string
		wantCode   workload.Code
		wantFields []string
		wantMsg    string
	}{
		{name: "required fields", opts: map[string]any{"project": nil, "location": nil, "cluster": nil}, env: withSA,
			wantCode: workload.InvalidArgument, wantFields: []string{p + "project", p + "location", p + "cluster"}},
		{name: "malformed fields", opts: map[string]any{"project": "Demo_Project", "location": "europe west1", "cluster": "Prod_Cluster", "endpoint": "public", "namespace": "Team_A"}, env: withSA,
			wantCode: workload.InvalidArgument, wantFields: []string{p + "project", p + "location", p + "cluster", p + "endpoint", p + "namespace"}},
		{name: "cloud run option in gke mode", opts: map[string]any{"region": "europe-west1"}, env: withSA,
			wantCode: workload.InvalidArgument, wantFields: []string{p + "region"}, wantMsg: "unknown field in gke mode: the cluster's region or zone is options.location"},
		{name: "kubeconfig is not a gke option", opts: map[string]any{"kubeconfig": "/root/.kube/config"}, env: withSA,
			wantCode: workload.InvalidArgument, wantFields: []string{p + "kubeconfig"}, wantMsg: "come from the GKE API"},
		{name: "gke option in run mode", opts: map[string]any{"mode": "run", "region": "europe-west1", "location": nil, "cluster": nil, "namespace": "web"}, env: withSA,
			wantCode: workload.InvalidArgument, wantFields: []string{p + "namespace"}},
		{name: "mode not a string", opts: map[string]any{"mode": 3}, env: withSA, wantCode: workload.InvalidArgument, wantMsg: p + "mode"},
		{name: "unknown mode", opts: map[string]any{"mode": "eks"}, env: withSA, wantCode: workload.InvalidArgument, wantMsg: `"eks" is not one of run, gke`},
		{name: "no credentials", env: map[string]string{}, wantCode: workload.Unauthenticated, wantMsg: "GOOGLE_APPLICATION_CREDENTIALS is not set"},
		{name: "credentials file missing", env: map[string]string{"GOOGLE_APPLICATION_CREDENTIALS": filepath.Join(dir, "absent.json")},
			wantCode: workload.Unauthenticated, wantMsg: "no such file"},
		{name: "user credentials", env: map[string]string{"GOOGLE_APPLICATION_CREDENTIALS": user},
			wantCode: workload.Unauthenticated, wantMsg: `type "authorized_user"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// Through the registry's factory: these fail before any
			// client is built.
			pr, err := gcp.Open(context.Background(), gkeConfig(tc.opts), credentials.FromMap(tc.env))
			if err == nil {
				_ = pr.(io.Closer).Close()
				t.Fatalf("Open succeeded, want %s", tc.wantCode)
			}
			we := workload.AsError(err)
			if we.Code != tc.wantCode || !strings.Contains(we.Message, tc.wantMsg) {
				t.Fatalf("Open = %v, want %s containing %q", err, tc.wantCode, tc.wantMsg)
			}
			var paths []string
			for _, f := range we.Fields {
				paths = append(paths, f.Path)
			}
			if tc.wantFields != nil && !slices.Equal(slices.Sorted(slices.Values(paths)), slices.Sorted(slices.Values(tc.wantFields))) {
				t.Fatalf("fields %v, want %v (%v)", paths, tc.wantFields, err)
			}
			if strings.Contains(err.Error(), "PRIVATE KEY") {
				t.Fatal("the error leaks the key file's content")
			}
		})
	}

	t.Run("project from the environment", func(t *testing.T) {
		g := newGKEFakes(t, time.Hour)
		creds := credentials.FromMap(map[string]string{"GOOGLE_APPLICATION_CREDENTIALS": g.keyFile, "GOOGLE_CLOUD_PROJECT": "env-project"})
		p, err := gcp.OpenGKEWithClientOptions(context.Background(), gkeConfig(map[string]any{"project": nil}), creds,
			option.WithGRPCConn(g.api.Conn()), option.WithoutAuthentication())
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		if want := fakegcp.ClusterName("env-project", gkeLocation, gkeCluster); p.Cluster() != want {
			t.Fatalf("Cluster() = %q, want %q", p.Cluster(), want)
		}
	})
	t.Run("OpenWithClientOptions refuses gke mode", func(t *testing.T) {
		g := newGKEFakes(t, time.Hour)
		creds := credentials.FromMap(map[string]string{"GOOGLE_APPLICATION_CREDENTIALS": g.keyFile})
		_, err := gcp.OpenWithClientOptions(context.Background(), gkeConfig(nil), creds, g.api.GRPCOptions(), g.api.RESTOptions())
		if workload.CodeOf(err) != workload.InvalidArgument || !strings.Contains(err.Error(), "OpenGKEWithClientOptions") {
			t.Fatalf("OpenWithClientOptions in gke mode = %v", err)
		}
	})
}

// jws signs claims as a JWT with key (RS256), for requests to the fake
// token endpoint built by hand.
func jws(t *testing.T, key *rsa.PrivateKey, kid string, claims map[string]any) string {
	t.Helper()
	enc := func(v any) string {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return base64.RawURLEncoding.EncodeToString(b)
	}
	signing := enc(map[string]string{"alg": "RS256", "typ": "JWT", "kid": kid}) + "." + enc(claims)
	sum := sha256.Sum256([]byte(signing))
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, sum[:])
	if err != nil {
		t.Fatal(err)
	}
	return signing + "." + base64.RawURLEncoding.EncodeToString(sig)
}

// TestFakeOAuthDocumented pins the fake token endpoint to Google's
// documentation of the service-account flow ("Using OAuth 2.0 for Server
// to Server Applications"): the real auth library gets a Bearer token with
// the requested scopes and lifetime, and the documented refusals come back
// as HTTP 400 with the documented error codes.
func TestFakeOAuthDocumented(t *testing.T) {
	o, err := fakegcp.NewOAuth(gkeProject)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(o.Close)
	o.Lifetime = 2 * time.Second

	t.Run("auth library", func(t *testing.T) {
		ac, err := gauthcreds.NewCredentialsFromJSON(gauthcreds.ServiceAccount, o.ServiceAccountJSON(gkeProject),
			&gauthcreds.DetectOptions{Scopes: gcp.GKEScopes, DisableAsyncRefresh: true, EarlyTokenRefresh: time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		tok, err := ac.Token(context.Background())
		if err != nil {
			t.Fatalf("Token: %v", err)
		}
		if tok.Type != "Bearer" || time.Until(tok.Expiry) > 2*time.Second || time.Until(tok.Expiry) < time.Second {
			t.Fatalf("token type %q expiring in %v, want Bearer in about 2s", tok.Type, time.Until(tok.Expiry))
		}
		it, ok := o.Valid(tok.Value)
		if !ok || it.Email != o.Email() || !slices.Equal(it.Scopes, gcp.GKEScopes) {
			t.Fatalf("Valid = %+v %v, want issued to %s with %v", it, ok, o.Email(), gcp.GKEScopes)
		}
		time.Sleep(time.Until(it.Expires) + 50*time.Millisecond)
		if _, ok := o.Valid(tok.Value); ok {
			t.Fatal("an expired token is still valid")
		}
		next, err := ac.Token(context.Background())
		if err != nil || next.Value == tok.Value {
			t.Fatalf("Token after expiry = %v, %v; want a new token", next, err)
		}
	})

	other, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().Unix()
	good := func() map[string]any {
		return map[string]any{"iss": o.Email(), "scope": strings.Join(gcp.GKEScopes, " "), "aud": o.TokenURL(), "iat": now, "exp": now + 3600}
	}
	with := func(k string, v any) map[string]any { c := good(); c[k] = v; return c }
	cases := []struct {
		name      string
		method    string
		form      url.Values
		wantHTTP  int
		wantError string
		wantDesc  string
	}{
		{"documented request", http.MethodPost, url.Values{"grant_type": {fakegcp.JWTBearerGrant}, "assertion": {jws(t, o.PrivateKey(), o.KeyID(), good())}},
			http.StatusOK, "", ""},
		{"wrong grant type", http.MethodPost, url.Values{"grant_type": {"client_credentials"}, "assertion": {jws(t, o.PrivateKey(), o.KeyID(), good())}},
			http.StatusBadRequest, "unsupported_grant_type", "Invalid grant_type"},
		{"signed with another key", http.MethodPost, url.Values{"grant_type": {fakegcp.JWTBearerGrant}, "assertion": {jws(t, other, o.KeyID(), good())}},
			http.StatusBadRequest, "invalid_grant", "Invalid JWT Signature."},
		{"another key id", http.MethodPost, url.Values{"grant_type": {fakegcp.JWTBearerGrant}, "assertion": {jws(t, o.PrivateKey(), "0123", good())}},
			http.StatusBadRequest, "invalid_grant", "Invalid JWT Signature."},
		{"audience not the token endpoint", http.MethodPost, url.Values{"grant_type": {fakegcp.JWTBearerGrant}, "assertion": {jws(t, o.PrivateKey(), o.KeyID(), with("aud", "https://oauth2.googleapis.com/token"))}},
			http.StatusBadRequest, "invalid_grant", "aud"},
		{"another issuer", http.MethodPost, url.Values{"grant_type": {fakegcp.JWTBearerGrant}, "assertion": {jws(t, o.PrivateKey(), o.KeyID(), with("iss", "someone@example.com"))}},
			http.StatusBadRequest, "invalid_grant", "iss"},
		{"longer than an hour", http.MethodPost, url.Values{"grant_type": {fakegcp.JWTBearerGrant}, "assertion": {jws(t, o.PrivateKey(), o.KeyID(), with("exp", now+7200))}},
			http.StatusBadRequest, "invalid_grant", "short-lived token (60 minutes)"},
		{"expired assertion", http.MethodPost, url.Values{"grant_type": {fakegcp.JWTBearerGrant}, "assertion": {jws(t, o.PrivateKey(), o.KeyID(), with("exp", now-10))}},
			http.StatusBadRequest, "invalid_grant", "reasonable timeframe"},
		{"no scope", http.MethodPost, url.Values{"grant_type": {fakegcp.JWTBearerGrant}, "assertion": {jws(t, o.PrivateKey(), o.KeyID(), with("scope", ""))}},
			http.StatusBadRequest, "invalid_scope", ""},
		{"GET", http.MethodGet, nil, http.StatusMethodNotAllowed, "invalid_request", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequest(tc.method, o.TokenURL(), strings.NewReader(tc.form.Encode()))
			if err != nil {
				t.Fatal(err)
			}
			if tc.form != nil {
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var body struct {
				AccessToken string `json:"access_token"`
				ExpiresIn   int64  `json:"expires_in"`
				TokenType   string `json:"token_type"`
				Scope       string `json:"scope"`
				Error       string `json:"error"`
				Description string `json:"error_description"`
			}
			if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tc.wantHTTP || body.Error != tc.wantError || !strings.Contains(body.Description, tc.wantDesc) {
				t.Fatalf("HTTP %d %+v, want %d %s containing %q", resp.StatusCode, body, tc.wantHTTP, tc.wantError, tc.wantDesc)
			}
			if tc.wantHTTP == http.StatusOK && (body.AccessToken == "" || body.TokenType != "Bearer" || body.ExpiresIn != 2 || body.Scope != strings.Join(gcp.GKEScopes, " ")) {
				t.Fatalf("token response %+v, want a Bearer token, expires_in 2 and the scopes", body)
			}
		})
	}
}

// BenchmarkGKEScale: scale and status through the gcp provider in mode gke
// (GetCluster once, then OAuth2 access tokens checked by the API server's
// webhook) against the kubernetes provider on the same cluster, in the
// same run.
func BenchmarkGKEScale(b *testing.B) {
	c := k8stest.Start(b)
	ns := c.Namespace(b)
	g := newGKEFakes(b, time.Hour)
	g.api.AddCluster(gkeProject, clusterOf(c))
	g.trustTokens(b, c)
	kubetest.CompareScale(b, c, ns, g.open(b, map[string]any{"namespace": ns}))
}

// TestGKEMissingPermissionNamed (issue 22): in GKE mode the kubernetes
// provider's access check (SelfSubjectAccessReview) names a verb the
// account's Role lacks, in the capability matrix too, and the operation
// is refused with permission_denied naming it.
func TestGKEMissingPermissionNamed(t *testing.T) {
	c := k8stest.Start(t)
	ns := c.Namespace(t)
	g := newGKEFakes(t, time.Hour)
	g.api.AddCluster(gkeProject, clusterOf(c))
	// The account is only itself (no system:masters): RBAC decides.
	c.AddTokenAuthenticator(t, func(_ context.Context, token string) (string, []string, bool) {
		it, ok := g.oauth.Valid(token)
		return it.Email, nil, ok
	})
	ctx := testkit.Context(t, 2*time.Minute)
	role := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "alphaswarm", Namespace: ns}, Rules: []rbacv1.PolicyRule{
		{APIGroups: []string{"", "apps", "metrics.k8s.io"}, Resources: []string{"deployments", "deployments/scale", "replicasets", "pods", "pods/log", "configmaps", "services"}, Verbs: []string{"*"}},
		{APIGroups: []string{""}, Resources: []string{"pods/exec"}, Verbs: []string{"get"}}, // no create
	}}
	if _, err := c.Client().RbacV1().Roles(ns).Create(ctx, role, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	rb := &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "alphaswarm", Namespace: ns},
		RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: "alphaswarm"},
		Subjects: []rbacv1.Subject{{Kind: "User", APIGroup: "rbac.authorization.k8s.io", Name: g.oauth.Email()}}}
	if _, err := c.Client().RbacV1().RoleBindings(ns).Create(ctx, rb, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// The authorizer learns of new bindings through its informers: wait
	// until the account may list pods before the target opens.
	imp, err := k8sclient.NewForConfig(c.ImpersonatedConfig(g.oauth.Email()))
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := imp.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{}); err == nil {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatal("the Role's binding never took effect")
		case <-time.After(100 * time.Millisecond):
		}
	}

	p := g.open(t, map[string]any{"namespace": ns})
	if err := p.Ping(ctx); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	var reason string
	for deadline := time.Now().Add(30 * time.Second); ; {
		for _, c := range provider.Capabilities(p) {
			if c.Op == provider.OpExec && !c.Supported {
				reason = c.Reason
			}
		}
		if strings.Contains(reason, "create pods/exec") || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !strings.Contains(reason, "create pods/exec") {
		t.Fatalf("exec capability reason %q, want it to name create pods/exec", reason)
	}
	_, err = p.Exec(ctx, "web", provider.ExecRequest{Command: []string{"true"}})
	if workload.CodeOf(err) != workload.PermissionDenied || !strings.Contains(err.Error(), "create pods/exec") {
		t.Fatalf("Exec = %v, want permission_denied naming create pods/exec", err)
	}
	if we := workload.AsError(err); we.Provider != gcp.Name {
		t.Errorf("error provider %q, want gcp", we.Provider)
	}
}
