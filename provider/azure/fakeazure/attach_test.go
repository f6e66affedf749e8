package fakeazure

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	azfake "github.com/Azure/azure-sdk-for-go/sdk/azcore/fake"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/containerinstance/armcontainerinstance/v2"
	"github.com/coder/websocket"
)

// TestAttachWire: Containers_Attach answers a WebSocket URI and a
// password; the socket takes the password as the Authorization header
// (refusing the handshake without it), sends each line written with the
// stream's fd as its first byte, and closes normally when the run ends.
func TestAttachWire(t *testing.T) {
	f := newFake(t, Options{SubscriptionID: "s", ResourceGroup: "rg", PendingReads: 1})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	groups, _ := armcontainerinstance.NewContainerGroupsClient("s", &azfake.TokenCredential{}, armOpts(f.ACITransport()))
	containers, _ := armcontainerinstance.NewContainersClient("s", &azfake.TokenCredential{}, armOpts(f.ACITransport()))
	p, err := groups.BeginCreateOrUpdate(ctx, "rg", "web-0", armcontainerinstance.ContainerGroup{Location: to.Ptr("westeurope"),
		Tags: map[string]*string{"alphaswarm.service": to.Ptr("web"), "alphaswarm.target": to.Ptr("t")},
		Properties: &armcontainerinstance.ContainerGroupPropertiesProperties{Containers: []*armcontainerinstance.Container{{
			Name: to.Ptr("app"), Properties: &armcontainerinstance.ContainerProperties{Image: to.Ptr("img:1")}}}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	pollDone(t, p)
	// Pending: attach is refused until the container runs.
	var re *azcore.ResponseError
	if _, err := containers.Attach(ctx, "rg", "web-0", "app", nil); !errors.As(err, &re) || re.StatusCode != http.StatusConflict {
		t.Fatalf("attach while pending: %v, want 409", err)
	}
	if _, err := groups.Get(ctx, "rg", "web-0", nil); err != nil { // now Running
		t.Fatal(err)
	}
	r, err := containers.Attach(ctx, "rg", "web-0", "app", nil)
	if err != nil || r.WebSocketURI == nil || r.Password == nil {
		t.Fatalf("attach = %+v, %v", r, err)
	}
	for _, h := range []http.Header{nil, {"Authorization": {"wrong"}}} {
		_, resp, err := websocket.Dial(ctx, *r.WebSocketURI, &websocket.DialOptions{HTTPClient: f.AttachHTTPClient(), HTTPHeader: h})
		if err == nil || resp == nil || resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("handshake with header %v: %v, want 401", h, err)
		}
	}
	conn, _, err := websocket.Dial(ctx, *r.WebSocketURI, &websocket.DialOptions{HTTPClient: f.AttachHTTPClient(),
		HTTPHeader: http.Header{"Authorization": {*r.Password}}})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.CloseNow()
	f.EmitLog("t", "web", "to stdout")
	f.EmitStderr("t", "web", "to stderr")
	for _, want := range []string{"\x01to stdout\n", "\x02to stderr\n"} {
		_, msg, err := conn.Read(ctx)
		if err != nil || string(msg) != want {
			t.Fatalf("message = %q, %v; want %q", msg, err, want)
		}
	}
	if _, err := groups.Stop(ctx, "rg", "web-0", nil); err != nil {
		t.Fatal(err)
	}
	if _, _, err := conn.Read(ctx); websocket.CloseStatus(err) != websocket.StatusNormalClosure {
		t.Fatalf("after stop: %v, want a normal close", err)
	}
}
