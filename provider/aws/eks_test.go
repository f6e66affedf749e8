package aws

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	sdkaws "github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"

	"github.com/alphaswarm/controller/credentials"
	"github.com/alphaswarm/controller/internal/k8stest"
	"github.com/alphaswarm/controller/provider"
	"github.com/alphaswarm/controller/provider/aws/fakeaws"
	"github.com/alphaswarm/controller/provider/kubernetes/kubetest"
	"github.com/alphaswarm/controller/provider/providertest"
	"github.com/alphaswarm/controller/workload"
)

// The EKS tests that need a Kubernetes API server use the control plane
// internal/k8stest starts once for this test binary; it is stopped here.
func TestMain(m *testing.M) { k8stest.Main(m) }

const (
	eksAccessKey = "AKIDEXAMPLE"
	eksSecretKey = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
)

func eksCreds(region string) *credentials.Resolver {
	return credentials.FromMap(map[string]string{
		"AWS_ACCESS_KEY_ID": eksAccessKey, "AWS_SECRET_ACCESS_KEY": eksSecretKey, "AWS_REGION": region,
	})
}

func rawOptions(opts map[string]any) map[string]json.RawMessage {
	raw := map[string]json.RawMessage{}
	for k, v := range opts {
		b, err := json.Marshal(v)
		if err != nil {
			panic(err)
		}
		raw[k] = b
	}
	return raw
}

// openEKSTarget opens target prod through the registry and closes it when
// t ends.
func openEKSTarget(t testing.TB, opts map[string]any, creds *credentials.Resolver) *EKSProvider {
	t.Helper()
	pr, err := provider.Open(context.Background(), provider.TargetConfig{Name: "prod", Provider: Name, Options: rawOptions(opts)}, creds)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	p, ok := pr.(*EKSProvider)
	if !ok {
		t.Fatalf("Open in mode eks returned %T", pr)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// tokenCheck is what the API server's authenticator (the test's webhook,
// standing in for aws-iam-authenticator) knows: which cluster it serves,
// which STS host the URL must name, and the caller's credentials, with
// which it recomputes the signature, as STS would.
type tokenCheck struct {
	cluster, scheme, host, region string
	accessKey, secretKey          string
	now                           func() time.Time
}

var hexSig = regexp.MustCompile(`^[0-9a-f]{64}$`)

// verify returns nil if token is an EKS token of c.cluster signed with
// c's credentials and made less than 15 minutes ago.
func (c tokenCheck) verify(token string) error {
	enc, ok := strings.CutPrefix(token, "k8s-aws-v1.")
	if !ok {
		return errors.New("no k8s-aws-v1. prefix")
	}
	raw, err := base64.RawURLEncoding.DecodeString(enc)
	if err != nil {
		return fmt.Errorf("not base64url without padding: %v", err)
	}
	u, err := url.Parse(string(raw))
	if err != nil {
		return err
	}
	if u.Scheme != c.scheme || u.Host != c.host || (u.Path != "/" && u.Path != "") {
		return fmt.Errorf("URL %s://%s%s, want %s://%s/", u.Scheme, u.Host, u.Path, c.scheme, c.host)
	}
	q := u.Query()
	for k := range q {
		if k != "Action" && k != "Version" && !strings.HasPrefix(k, "X-Amz-") {
			return fmt.Errorf("unexpected query parameter %s", k)
		}
	}
	date, err := time.Parse("20060102T150405Z", q.Get("X-Amz-Date"))
	if err != nil {
		return fmt.Errorf("X-Amz-Date: %v", err)
	}
	for k, want := range map[string]string{
		"Action":           "GetCallerIdentity",
		"Version":          "2011-06-15",
		"X-Amz-Algorithm":  "AWS4-HMAC-SHA256",
		"X-Amz-Expires":    "60",
		"X-Amz-Credential": fmt.Sprintf("%s/%s/%s/sts/aws4_request", c.accessKey, date.Format("20060102"), c.region),
	} {
		if got := q.Get(k); got != want {
			return fmt.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	signed := strings.Split(q.Get("X-Amz-SignedHeaders"), ";")
	if !slices.Contains(signed, "host") || !slices.Contains(signed, "x-k8s-aws-id") {
		return fmt.Errorf("X-Amz-SignedHeaders %q lacks host or x-k8s-aws-id", q.Get("X-Amz-SignedHeaders"))
	}
	sig := q.Get("X-Amz-Signature")
	if !hexSig.MatchString(sig) {
		return fmt.Errorf("X-Amz-Signature %q", sig)
	}
	if age := c.now().Sub(date); age > 15*time.Minute || age < -time.Minute {
		return fmt.Errorf("made %v ago, EKS accepts 15 minutes", age)
	}
	// Sign the same request again, with x-k8s-aws-id set to the
	// cluster this authenticator serves: only a token made for it, with
	// these credentials, has this signature.
	q.Del("X-Amz-Signature")
	again := *u
	again.RawQuery = q.Encode()
	req, _ := http.NewRequest(http.MethodGet, again.String(), nil)
	req.Header.Set("x-k8s-aws-id", c.cluster)
	const emptySHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
	resigned, _, err := v4.NewSigner().PresignHTTP(context.Background(),
		sdkaws.Credentials{AccessKeyID: c.accessKey, SecretAccessKey: c.secretKey}, req, emptySHA256, "sts", c.region, date)
	if err != nil {
		return err
	}
	ru, _ := url.Parse(resigned)
	if ru.Query().Get("X-Amz-Signature") != sig {
		return fmt.Errorf("the signature is not that of a GetCallerIdentity for cluster %q with access key %s", c.cluster, c.accessKey)
	}
	return nil
}

// TestEKSTokenForm: the token of a target without baseEndpoint is a
// presigned URL of the region's STS endpoint, signed for its cluster.
func TestEKSTokenForm(t *testing.T) {
	p := openEKSTarget(t, map[string]any{"mode": "eks", "cluster": "prod-eks", "region": "us-west-2"}, eksCreds("us-east-1"))
	tok, err := p.tokens.Token(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	check := tokenCheck{cluster: "prod-eks", scheme: "https", host: "sts.us-west-2.amazonaws.com", region: "us-west-2",
		accessKey: eksAccessKey, secretKey: eksSecretKey, now: time.Now}
	if err := check.verify(tok); err != nil {
		t.Fatalf("token %s: %v", tok, err)
	}
	// The checks bite: each of these must refuse the token.
	for name, c := range map[string]tokenCheck{
		"another cluster":    {cluster: "other-eks", scheme: "https", host: check.host, region: check.region, accessKey: eksAccessKey, secretKey: eksSecretKey, now: time.Now},
		"another secret":     {cluster: "prod-eks", scheme: "https", host: check.host, region: check.region, accessKey: eksAccessKey, secretKey: "nope", now: time.Now},
		"another host":       {cluster: "prod-eks", scheme: "https", host: "sts.amazonaws.com", region: check.region, accessKey: eksAccessKey, secretKey: eksSecretKey, now: time.Now},
		"another region":     {cluster: "prod-eks", scheme: "https", host: check.host, region: "us-east-1", accessKey: eksAccessKey, secretKey: eksSecretKey, now: time.Now},
		"16 minutes later":   {cluster: "prod-eks", scheme: "https", host: check.host, region: check.region, accessKey: eksAccessKey, secretKey: eksSecretKey, now: func() time.Time { return time.Now().Add(16 * time.Minute) }},
		"another access key": {cluster: "prod-eks", scheme: "https", host: check.host, region: check.region, accessKey: "AKIDOTHER", secretKey: eksSecretKey, now: time.Now},
	} {
		if err := c.verify(tok); err == nil {
			t.Errorf("%s: the token was accepted", name)
		}
	}
	for _, bad := range []string{"", tok[len("k8s-aws-v1."):], "k8s-aws-v1." + base64.StdEncoding.EncodeToString([]byte("https://sts.us-west-2.amazonaws.com/")), tok + "x"} {
		if err := check.verify(bad); err == nil {
			t.Errorf("token %q was accepted", bad)
		}
	}
}

// fakeClock is a clock the tests move.
type fakeClock struct{ off atomic.Int64 }

func (c *fakeClock) Now() time.Time          { return time.Now().Add(time.Duration(c.off.Load())) }
func (c *fakeClock) Advance(d time.Duration) { c.off.Add(int64(d)) }

// TestEKSTokenRefresh: a token is used for 14 minutes, then replaced; a
// token the API server refused is replaced at once; credentials that
// expire sooner bound it.
func TestEKSTokenRefresh(t *testing.T) {
	var presigns atomic.Int64
	var credsExpire atomic.Int64 // unix nanos; 0: static credentials
	src := &tokenSource{cluster: "c",
		presign: func(context.Context) (string, error) {
			n := presigns.Add(1)
			return fmt.Sprintf("https://sts.example/?n=%d", n), nil
		},
		creds: sdkaws.CredentialsProviderFunc(func(context.Context) (sdkaws.Credentials, error) {
			c := sdkaws.Credentials{AccessKeyID: "AKID", SecretAccessKey: "s"}
			if e := credsExpire.Load(); e != 0 {
				c.CanExpire, c.Expires = true, time.Unix(0, e)
			}
			return c, nil
		}),
	}
	clock := &fakeClock{}
	src.now = clock.Now
	ctx := context.Background()
	steps := []struct {
		name    string
		advance time.Duration
		forget  bool
		expire  time.Duration // credentials expire this long from now (0: static)
		want    int64         // presigns so far
	}{
		{name: "first", want: 1},
		{name: "13m59s later: the same token", advance: 13*time.Minute + 59*time.Second, want: 1},
		{name: "14m later: a new one", advance: time.Second, want: 2},
		{name: "a minute on: still that one", advance: time.Minute, want: 2},
		{name: "refused by the API server: a new one", forget: true, want: 3},
		{name: "credentials expiring in 5m: kept 4m", advance: 14 * time.Minute, expire: 5 * time.Minute, want: 4},
		{name: "3m59s later: the same", advance: 3*time.Minute + 59*time.Second, want: 4},
		{name: "4m later, credentials renewed for 1h: a new one", advance: time.Second, expire: time.Hour, want: 5},
		{name: "13m59s later: the same", advance: 13*time.Minute + 59*time.Second, want: 5},
	}
	last := ""
	for _, s := range steps {
		clock.Advance(s.advance)
		if s.expire != 0 {
			credsExpire.Store(clock.Now().Add(s.expire).UnixNano())
		}
		if s.forget {
			src.forget(last)
		}
		tok, err := src.Token(ctx)
		if err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if n := presigns.Load(); n != s.want {
			t.Fatalf("%s: %d tokens made, want %d", s.name, n, s.want)
		}
		want := "k8s-aws-v1." + base64.RawURLEncoding.EncodeToString([]byte(fmt.Sprintf("https://sts.example/?n=%d", s.want)))
		if tok != want {
			t.Fatalf("%s: token %q, want %q", s.name, tok, want)
		}
		last = tok
	}
	src.forget("k8s-aws-v1.not-the-current-one")
	if _, _ = src.Token(ctx); presigns.Load() != 5 {
		t.Error("forgetting another token replaced the current one")
	}
}

// TestEKSTokenRoundTripper: every request carries the current token, the
// caller's request is left alone, and a 401 makes the next request use a
// new token.
func TestEKSTokenRoundTripper(t *testing.T) {
	var mu sync.Mutex
	var seen []string
	refuse := atomic.Bool{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Header.Get("Authorization"))
		mu.Unlock()
		if refuse.Load() {
			w.WriteHeader(http.StatusUnauthorized)
		}
	}))
	t.Cleanup(srv.Close)
	var n atomic.Int64
	src := &tokenSource{cluster: "c", now: time.Now, presign: func(context.Context) (string, error) {
		return fmt.Sprintf("https://sts.example/?n=%d", n.Add(1)), nil
	}}
	client := &http.Client{Transport: &tokenRoundTripper{src: src, next: http.DefaultTransport}}
	tokenN := func(i int) string {
		return "Bearer k8s-aws-v1." + base64.RawURLEncoding.EncodeToString([]byte(fmt.Sprintf("https://sts.example/?n=%d", i)))
	}
	do := func() {
		req, _ := http.NewRequest(http.MethodGet, srv.URL, nil)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if h := req.Header.Get("Authorization"); h != "" {
			t.Errorf("the caller's request was changed: Authorization %q", h)
		}
	}
	do()
	do()
	refuse.Store(true)
	do()
	refuse.Store(false)
	do()
	want := []string{tokenN(1), tokenN(1), tokenN(1), tokenN(2)}
	if !slices.Equal(seen, want) {
		t.Errorf("Authorization headers:\n%q\nwant\n%q", seen, want)
	}

	failing := &tokenSource{cluster: "c", now: time.Now, presign: func(context.Context) (string, error) {
		return "", errNoCredentials
	}}
	_, err := (&http.Client{Transport: &tokenRoundTripper{src: failing, next: http.DefaultTransport}}).Get(srv.URL)
	if workload.CodeOf(err) != workload.Unauthenticated {
		t.Errorf("a token that cannot be made: %v, want unauthenticated", err)
	}
}

// TestEKSOpen: options are checked strictly at open, AWS is not called,
// and the target declares the kubernetes provider's capabilities.
func TestEKSOpen(t *testing.T) {
	f := fakeaws.New(fakeaws.Options{})
	t.Cleanup(f.Close)
	base := func(extra map[string]any) map[string]any {
		o := map[string]any{"mode": "eks", "cluster": "prod-eks", "baseEndpoint": f.URL()}
		for k, v := range extra {
			if v == nil {
				delete(o, k)
			} else {
				o[k] = v
			}
		}
		return o
	}
	bad := []struct {
		name   string
		opts   map[string]any
		creds  *credentials.Resolver
		fields []string
	}{
		{"no cluster", base(map[string]any{"cluster": nil}), nil, []string{"targets.prod.options.cluster"}},
		{"ecs options in mode eks", base(map[string]any{"subnets": []string{"subnet-1"}, "launchType": "FARGATE"}), nil,
			[]string{"targets.prod.options.launchType", "targets.prod.options.subnets"}},
		{"eks options in mode ecs", map[string]any{"mode": "ecs", "subnets": []string{"subnet-1"}, "namespace": "apps"}, nil,
			[]string{"targets.prod.options.namespace"}},
		{"bad namespace", base(map[string]any{"namespace": "Apps_1"}), nil, []string{"targets.prod.options.namespace"}},
		{"relative configDir", base(map[string]any{"configDir": "etc/cfg"}), nil, []string{"targets.prod.options.configDir"}},
		{"negative rolloutTimeout", base(map[string]any{"rolloutTimeout": "-1s"}), nil, []string{"targets.prod.options.rolloutTimeout"}},
		{"unknown option", base(map[string]any{"kubeconfig": "/etc/kube"}), nil, []string{"targets.prod.options.kubeconfig"}},
		{"no region", base(nil), credentials.FromMap(map[string]string{"AWS_ACCESS_KEY_ID": "a", "AWS_SECRET_ACCESS_KEY": "b"}),
			[]string{"options.region"}},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			creds := tc.creds
			if creds == nil {
				creds = eksCreds("us-east-1")
			}
			_, err := provider.Open(context.Background(), provider.TargetConfig{Name: "prod", Provider: Name, Options: rawOptions(tc.opts)}, creds)
			we := workload.AsError(err)
			if workload.CodeOf(err) != workload.InvalidArgument {
				t.Fatalf("err = %v, want invalid_argument", err)
			}
			var paths []string
			for _, fe := range we.Fields {
				paths = append(paths, fe.Path)
			}
			if !slices.Equal(paths, tc.fields) {
				t.Errorf("fields %q, want %q (%v)", paths, tc.fields, err)
			}
		})
	}

	p := openEKSTarget(t, base(map[string]any{"namespace": "apps", "deleteOnStop": true, "rolloutTimeout": "2m", "metricsPeriod": "10s"}), eksCreds("us-east-1"))
	if p.ProviderName() != "aws" || p.Cluster() != "prod-eks" || p.Namespace() != "apps" {
		t.Errorf("name %q cluster %q namespace %q", p.ProviderName(), p.Cluster(), p.Namespace())
	}
	if p.kopts.MetricsInterval != workload.Duration(10*time.Second) || !p.kopts.DeleteOnStop || p.kopts.RolloutTimeout != workload.Duration(2*time.Minute) {
		t.Errorf("kubernetes options %+v", p.kopts)
	}
	for _, c := range provider.Capabilities(p) {
		if !c.Supported {
			t.Errorf("capability %s unsupported before the cluster is known: %s", c.Op, c.Reason)
		}
	}
	if n := f.Requests("eks.DescribeCluster"); n != 0 {
		t.Errorf("Open called DescribeCluster %d times", n)
	}
}

// TestEKSOptionModes: every option belongs to mode ecs, mode eks or both,
// so that none is silently ignored in the other mode.
func TestEKSOptionModes(t *testing.T) {
	seen := map[string]int{}
	for _, l := range [][]string{commonOptions, ecsOnlyOptions, eksOnlyOptions} {
		for _, k := range l {
			seen[k]++
		}
	}
	typ := reflect.TypeOf(Options{})
	for i := range typ.NumField() {
		name, _, _ := strings.Cut(typ.Field(i).Tag.Get("json"), ",")
		switch seen[name] {
		case 1:
		case 0:
			t.Errorf("option %s (Options.%s) is in none of commonOptions, ecsOnlyOptions, eksOnlyOptions", name, typ.Field(i).Name)
		default:
			t.Errorf("option %s is in %d of the lists", name, seen[name])
		}
		delete(seen, name)
	}
	for k := range seen {
		t.Errorf("listed option %s is not a field of Options", k)
	}
}

// TestEKSResolveErrors: what an operation returns when the cluster cannot
// be reached, and that the next operation tries again.
func TestEKSResolveErrors(t *testing.T) {
	f := fakeaws.New(fakeaws.Options{})
	t.Cleanup(f.Close)
	ca := mustCAPEM(t)
	f.AddEKSCluster(fakeaws.EKSCluster{Name: "creating", Endpoint: "https://creating.example", CAPEM: ca, Status: "CREATING"})
	f.AddEKSCluster(fakeaws.EKSCluster{Name: "plain-http", Endpoint: "http://127.0.0.1:1", CAPEM: ca})
	f.AddEKSCluster(fakeaws.EKSCluster{Name: "bad-ca", Endpoint: "https://127.0.0.1:1", CAPEM: []byte("not a certificate")})
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()
	cases := []struct {
		name     string
		cluster  string
		endpoint string
		creds    *credentials.Resolver
		code     workload.Code
		contains []string
	}{
		{"unknown cluster", "absent", f.URL(), nil, workload.NotFound,
			[]string{`EKS cluster "absent" in us-east-1 (targets.prod.options.cluster)`, "ResourceNotFoundException", "No cluster found for name: absent."}},
		{"cluster being created", "creating", f.URL(), nil, workload.Unavailable, []string{"CREATING"}},
		{"endpoint not https", "plain-http", f.URL(), nil, workload.ProviderError, []string{"not an https URL"}},
		{"certificate authority not PEM", "bad-ca", f.URL(), nil, workload.ProviderError, []string{"certificateAuthority.data"}},
		{"no credentials", "absent", f.URL(), credentials.FromMap(map[string]string{"AWS_REGION": "us-east-1"}), workload.Unauthenticated, []string{"no AWS credentials"}},
		{"AWS unreachable", "absent", closed.URL, nil, workload.Unavailable, []string{"DescribeCluster"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			creds := tc.creds
			if creds == nil {
				creds = eksCreds("us-east-1")
			}
			p := openEKSTarget(t, map[string]any{"mode": "eks", "cluster": tc.cluster, "baseEndpoint": tc.endpoint, "maxAttempts": 1}, creds)
			before := f.Requests("eks.DescribeCluster")
			ctx := context.Background()
			var errs []error
			_, err := p.Status(ctx, "web")
			errs = append(errs, err)
			errs = append(errs, p.Ping(ctx))
			for _, err := range p.StreamMetrics(ctx, "web") {
				errs = append(errs, err)
			}
			t.Logf("%v", errs[0])
			for i, err := range errs {
				we := workload.AsError(err)
				if we == nil || we.Code != tc.code || we.Provider != Name {
					t.Fatalf("operation %d: %v, want %s from provider aws", i, err, tc.code)
				}
				for _, s := range tc.contains {
					if !strings.Contains(err.Error(), s) {
						t.Errorf("operation %d: %q does not say %q", i, err, s)
					}
				}
			}
			if tc.endpoint == f.URL() && tc.creds == nil {
				if n := f.Requests("eks.DescribeCluster") - before; n != len(errs) {
					t.Errorf("%d DescribeCluster calls for %d operations: a failed resolution must be retried", n, len(errs))
				}
			}
		})
	}

	t.Run("bad input is refused without AWS", func(t *testing.T) {
		p := openEKSTarget(t, map[string]any{"mode": "eks", "cluster": "absent", "baseEndpoint": closed.URL, "maxAttempts": 1}, eksCreds("us-east-1"))
		ctx := context.Background()
		_, e1 := p.Status(ctx, "Bad_Name")
		_, e2 := p.Scale(ctx, "", 1)
		_, e3 := p.Start(ctx, workload.DeploymentSpec{Name: "web"})
		e4 := p.ApplyConfig(ctx, "web/x", nil)
		for i, err := range []error{e1, e2, e3, e4} {
			if workload.CodeOf(err) != workload.InvalidArgument {
				t.Errorf("call %d: %v, want invalid_argument", i, err)
			}
		}
	})

	t.Run("closed", func(t *testing.T) {
		p := openEKSTarget(t, map[string]any{"mode": "eks", "cluster": "absent", "baseEndpoint": f.URL()}, eksCreds("us-east-1"))
		if err := p.Close(); err != nil {
			t.Fatal(err)
		}
		if err := p.Close(); err != nil {
			t.Fatalf("second Close: %v", err)
		}
		before := f.Requests("eks.DescribeCluster")
		if _, err := p.Status(context.Background(), "web"); workload.CodeOf(err) != workload.Unavailable || !strings.Contains(err.Error(), "closed") {
			t.Errorf("after Close: %v, want unavailable", err)
		}
		if f.Requests("eks.DescribeCluster") != before {
			t.Error("a closed provider called DescribeCluster")
		}
	})
}

func mustCAPEM(t *testing.T) []byte {
	t.Helper()
	srv := httptest.NewTLSServer(http.NotFoundHandler())
	defer srv.Close()
	return pemCert(srv.Certificate().Raw)
}

func pemCert(der []byte) []byte {
	b64 := base64.StdEncoding.EncodeToString(der)
	var sb strings.Builder
	sb.WriteString("-----BEGIN CERTIFICATE-----\n")
	for len(b64) > 64 {
		sb.WriteString(b64[:64] + "\n")
		b64 = b64[64:]
	}
	sb.WriteString(b64 + "\n-----END CERTIFICATE-----\n")
	return []byte(sb.String())
}

// eksEnv is an aws target in mode eks whose EKS cluster is the shared
// test control plane: the fake's DescribeCluster returns its endpoint and
// CA, and its API server accepts the EKS tokens of cluster (and only
// those) through a webhook that checks them as aws-iam-authenticator
// would.
type eksEnv struct {
	c        *k8stest.Cluster
	f        *fakeaws.Fake
	p        *EKSProvider
	ns       string
	clock    *fakeClock
	mu       sync.Mutex
	accepted map[string]int // token -> times accepted
	refused  atomic.Int64
}

func newEKSEnv(t testing.TB, cluster, tokenCluster string) *eksEnv {
	t.Helper()
	c := k8stest.Start(t)
	e := &eksEnv{c: c, ns: c.Namespace(t), clock: &fakeClock{}, accepted: map[string]int{}}
	e.f = fakeaws.New(fakeaws.Options{})
	t.Cleanup(e.f.Close)
	for _, name := range []string{"alpha-eks", "beta-eks"} {
		e.f.AddEKSCluster(fakeaws.EKSCluster{Name: name, Endpoint: c.Server, CAPEM: c.CAData})
	}
	fu, _ := url.Parse(e.f.URL())
	check := tokenCheck{cluster: tokenCluster, scheme: fu.Scheme, host: fu.Host, region: "us-east-1",
		accessKey: eksAccessKey, secretKey: eksSecretKey, now: e.clock.Now}
	c.AddTokenAuthenticator(t, func(_ context.Context, token string) (string, []string, bool) {
		if !strings.HasPrefix(token, "k8s-aws-v1.") {
			return "", nil, false
		}
		if err := check.verify(token); err != nil {
			e.refused.Add(1)
			return "", nil, false
		}
		e.mu.Lock()
		e.accepted[token]++
		e.mu.Unlock()
		return "eks:" + eksAccessKey, []string{"system:masters"}, true
	})
	e.p = openEKSTarget(t, map[string]any{"mode": "eks", "cluster": cluster, "region": "us-east-1",
		"namespace": e.ns, "baseEndpoint": e.f.URL(), "rolloutTimeout": "2m"}, eksCreds("us-east-1"))
	e.p.tokens.now = e.clock.Now // before any request
	return e
}

func (e *eksEnv) tokens() (distinct, uses int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, n := range e.accepted {
		uses += n
	}
	return len(e.accepted), uses
}

// TestEKSConformance runs the kubernetes provider's providertest scenarios
// through the aws provider in mode eks.
func TestEKSConformance(t *testing.T) {
	e := newEKSEnv(t, "alpha-eks", "alpha-eks")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	if err := e.p.Ping(ctx); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	// Settle the kubernetes provider's metrics.k8s.io check before the
	// suite reads the capabilities: this cluster has no Metrics Server.
	for e.p.UnsupportedReason(provider.OpStreamMetrics) == "" {
		select {
		case <-ctx.Done():
			t.Fatal("the metrics.k8s.io check did not settle within a minute")
		case <-time.After(20 * time.Millisecond):
		}
	}
	if r := e.p.UnsupportedReason(provider.OpStreamMetrics); !strings.Contains(r, "metrics.k8s.io") {
		t.Errorf("stream_metrics reason %q", r)
	}
	providertest.Run(t, kubetest.Harness(e.c, e.ns, "prod", e.p))

	if n := e.f.Requests("eks.DescribeCluster"); n != 1 {
		t.Errorf("DescribeCluster called %d times, want once", n)
	}
	distinct, uses := e.tokens()
	if uses == 0 {
		t.Fatal("the API server never authenticated an EKS token")
	}
	if n := e.refused.Load(); n != 0 {
		t.Errorf("the authenticator refused %d EKS tokens", n)
	}
	// The API server keeps a successful authentication for 10s, so the
	// webhook sees each token about once per 10s, not every request.
	t.Logf("the webhook authenticated %d distinct tokens %d times", distinct, uses)
}

// TestEKSClusterAuth: the token is refreshed on the API server's side too
// (a new token after 14 minutes, accepted), statuses and errors name the
// aws provider, and a token made for another cluster is refused.
func TestEKSClusterAuth(t *testing.T) {
	t.Run("refresh", func(t *testing.T) {
		e := newEKSEnv(t, "alpha-eks", "alpha-eks")
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		t.Cleanup(cancel)
		st, err := e.p.Start(ctx, workload.DeploymentSpec{Name: "web", Image: kubetest.Image, Replicas: 1})
		if err != nil {
			t.Fatal(err)
		}
		if st.Provider != Name || st.ID != "prod/web" || st.Phase != workload.Running {
			t.Errorf("status %+v", st)
		}
		list, err := e.p.List(ctx)
		if err != nil || len(list) != 1 || list[0].Provider != Name {
			t.Errorf("List: %+v, %v", list, err)
		}
		if _, err := e.p.Scale(ctx, "absent", 1); workload.CodeOf(err) != workload.NotFound || workload.AsError(err).Provider != Name {
			t.Errorf("Scale absent: %v, want not_found from aws", err)
		}
		before, _ := e.tokens()
		if before != 1 {
			t.Errorf("%d distinct tokens before 14 minutes, want 1", before)
		}
		// X-Amz-Date has a resolution of one second: let it change.
		time.Sleep(1100 * time.Millisecond)
		e.clock.Advance(14 * time.Minute)
		if _, err := e.p.Scale(ctx, "web", 2); err != nil {
			t.Fatalf("Scale after 14 minutes: %v", err)
		}
		if after, _ := e.tokens(); after != before+1 {
			t.Errorf("%d distinct tokens after 14 minutes, want %d", after, before+1)
		}
		// Watch: the kubernetes provider's events, named aws. Scale
		// until the watch (subscribed at some point after it starts) has
		// seen a change.
		wctx, wcancel := context.WithCancel(ctx)
		defer wcancel()
		seen := make(chan workload.DeploymentStatus, 1)
		go func() {
			for st, err := range e.p.Watch(wctx) {
				if err == nil && st.Name == "web" {
					seen <- st
					return
				}
			}
		}()
		for i := 0; ; i++ {
			select {
			case st := <-seen:
				if st.Provider != Name || st.ID != "prod/web" {
					t.Errorf("Watch: %+v", st)
				}
			case <-time.After(2 * time.Second):
				if i == 5 {
					t.Fatal("Watch saw no change of web")
				}
				if _, err := e.p.Scale(ctx, "web", 3-i%2); err != nil {
					t.Fatal(err)
				}
				continue
			}
			break
		}
		if _, err := e.p.Stop(ctx, "web"); err != nil {
			t.Fatal(err)
		}
		if n := e.refused.Load(); n != 0 {
			t.Errorf("%d tokens refused", n)
		}
		distinct, uses := e.tokens()
		t.Logf("the webhook authenticated %d distinct tokens %d times", distinct, uses)
	})
	t.Run("token of another cluster", func(t *testing.T) {
		// beta-eks resolves to the same API server, whose authenticator
		// serves alpha-eks only.
		e := newEKSEnv(t, "beta-eks", "alpha-eks")
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		t.Cleanup(cancel)
		_, err := e.p.Status(ctx, "web")
		if workload.CodeOf(err) != workload.Unauthenticated {
			t.Fatalf("Status with a beta-eks token: %v, want unauthenticated", err)
		}
		if we := workload.AsError(err); we.Provider != Name {
			t.Errorf("error names provider %q", we.Provider)
		}
		if e.refused.Load() == 0 {
			t.Error("the authenticator was never asked")
		}
		if _, uses := e.tokens(); uses != 0 {
			t.Errorf("%d requests accepted", uses)
		}
	})
}
