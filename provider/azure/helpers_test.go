package azure

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	azfake "github.com/Azure/azure-sdk-for-go/sdk/azcore/fake"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/containerinstance/armcontainerinstance/v2"
	"github.com/alphaswarm/controller/provider"
	"github.com/alphaswarm/controller/provider/azure/fakeazure"
)

func mkGroup(name, prov, state, cstate string, started time.Time) *armcontainerinstance.ContainerGroup {
	return &armcontainerinstance.ContainerGroup{Name: to.Ptr(name), Properties: &armcontainerinstance.ContainerGroupPropertiesProperties{
		ProvisioningState: to.Ptr(prov),
		InstanceView:      &armcontainerinstance.ContainerGroupPropertiesInstanceView{State: to.Ptr(state)},
		Containers: []*armcontainerinstance.Container{{Name: to.Ptr(containerName), Properties: &armcontainerinstance.ContainerProperties{
			Image: to.Ptr("img"),
			InstanceView: &armcontainerinstance.ContainerPropertiesInstanceView{RestartCount: to.Ptr[int32](0),
				CurrentState: &armcontainerinstance.ContainerState{State: to.Ptr(cstate), StartTime: to.Ptr(started)}},
		}}},
	}}
}

// hookTransport wraps the fake's ACI transport: before forwarding, before
// is called (if set); once armed and after a request matching arm went
// through, container group GETs answer 429 (throttled).
type hookTransport struct {
	next     policy.Transporter
	arm      func(*http.Request) bool
	before   func(*http.Request)
	armed    atomic.Bool
	throttle atomic.Bool
}

func (h *hookTransport) Do(req *http.Request) (*http.Response, error) {
	if h.throttle.Load() && req.Method == http.MethodGet && strings.Contains(req.URL.Path, "/containerGroups/") {
		body := `{"error":{"code":"TooManyRequests","message":"throttled"}}`
		return &http.Response{StatusCode: http.StatusTooManyRequests, Status: "429 Too Many Requests", Request: req,
			Header: http.Header{"Retry-After": {"0"}, "Content-Type": {"application/json"}, "X-Ms-Error-Code": {"TooManyRequests"}},
			Body:   io.NopCloser(bytes.NewReader([]byte(body)))}, nil
	}
	if h.before != nil {
		h.before(req)
	}
	resp, err := h.next.Do(req)
	if h.armed.Load() && h.arm != nil && h.arm(req) {
		h.throttle.Store(true)
	}
	return resp, err
}

// openOn opens the provider on an existing fake with the ACI transport
// tr (the fake's own when nil) and the fake's store and vault.
func openOn(t *testing.T, f *fakeazure.Fake, tr policy.Transporter, extra map[string]any) *Provider {
	t.Helper()
	if tr == nil {
		tr = f.ACITransport()
	}
	opts := map[string]any{
		"mode": "aci", "resourceGroup": testRG, "location": "westeurope",
		"appConfigEndpoint": f.AppConfigURL(), "keyVaultURL": fakeazure.VaultURL,
		"pollInterval": "5ms", "maxRetries": 1,
	}
	for k, v := range extra {
		opts[k] = v
	}
	p, err := open(context.Background(), provider.TargetConfig{Name: testTarget, Provider: Name, Options: rawOptions(opts)}, testCreds(), deps{
		cred: &azfake.TokenCredential{}, aci: tr, monitor: f.MonitorTransport(),
		keyVault: f.KeyVaultTransport(), appConfig: f.AppConfigTransport(), attach: f.AttachHTTPClient(),
	})
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { p.(*Provider).Close() })
	return p.(*Provider)
}

func newFake(t *testing.T) *fakeazure.Fake {
	f := fakeazure.New(fakeazure.Options{SubscriptionID: testSub, ResourceGroup: testRG, StartupLine: startupLine})
	t.Cleanup(f.Close)
	return f
}

func isPost(suffix string) func(*http.Request) bool {
	return func(r *http.Request) bool {
		return r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, suffix)
	}
}

func isPut(r *http.Request) bool { return r.Method == http.MethodPut }

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}
