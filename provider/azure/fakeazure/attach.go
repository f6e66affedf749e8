package fakeazure

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	azfake "github.com/Azure/azure-sdk-for-go/sdk/azcore/fake"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/containerinstance/armcontainerinstance/v2"
	"github.com/coder/websocket"
)

// Containers_Attach, as the fake plays it:
//
//   - POST .../containerGroups/{group}/containers/{container}/attach
//     answers {"webSocketUri", "password"} (ContainerAttachResponse,
//     azure-rest-api-specs containerInstance.json; the PowerShell example of
//     Add-AzContainerInstanceOutput shows a wss://…/logstream/sessionId/…
//     URI). The container must be running: the fake answers 409
//     ContainerGroupTransitioning otherwise, as for exec.
//   - The password goes "as an Authorization header value when connecting
//     to the websocketUri" (the REST spec's description of password, carried
//     into armcontainerinstance's ContainerAttachResponse doc): the fake
//     refuses the handshake with 401 without it or with another one. (The
//     exec socket instead takes its password as the first message; the
//     attach socket does not.)
//   - Each message carries output: its first byte is the stream (1 stdout,
//     2 stderr), the rest the bytes the container wrote (the framing
//     DefangLabs/defang's ACI log tail reads: logLine[0] is the fd). The
//     fake sends one message per line written.
//   - The stream is live output only, from the moment of the handshake (no
//     history: Defang reads history with ListLogs separately), and ends
//     with a close (status 1000) when the container's run ends (stop,
//     restart, update, delete, failure). Neither point is documented; they
//     are the fake's assumptions, named in docs/providers/azure.md.

// attachSession is one Attach answer: the URI's session and its password,
// for the run of the group's container it was made for.
type attachSession struct {
	group    string
	password string
	run      time.Time
}

// attachSub is a connected attach socket: frames go to ch, which is closed
// when the container's run ends.
type attachSub struct {
	ch chan []byte
}

// attachQueue bounds the frames queued for one socket; a reader that far
// behind is dropped (its socket closed), as a slow consumer would be.
const attachQueue = 4096

// AttachHTTPClient is an HTTP client that trusts the attach endpoint's
// certificate (the provider's attach dialer in tests).
func (f *Fake) AttachHTTPClient() *http.Client { return f.attachSrv.Client() }

func (f *Fake) startAttachServer() {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /logstream/sessionId/{id}", f.serveAttach)
	f.attachSrv = httptest.NewTLSServer(mux)
}

// endRun closes the attach sockets of a group's current run. f.mu is held.
func (f *Fake) endRun(g *group) {
	for _, s := range g.subs {
		close(s.ch)
	}
	g.subs = nil
}

// output records a line the group's container wrote: its log (ListLogs)
// and the attached sockets. f.mu is held.
func (f *Fake) output(g *group, fd byte, t time.Time, text string) {
	g.logs = append(g.logs, logEntry{t: t, text: text})
	if g.state != "Running" {
		return
	}
	frame := append([]byte{fd}, text+"\n"...)
	kept := g.subs[:0]
	for _, s := range g.subs {
		select {
		case s.ch <- frame:
			kept = append(kept, s)
		default:
			close(s.ch)
		}
	}
	g.subs = kept
}

func (f *Fake) attach(_ context.Context, rg, name, container string, _ *armcontainerinstance.ContainersClientAttachOptions) (resp azfake.Responder[armcontainerinstance.ContainersClientAttachResponse], e azfake.ErrorResponder) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls["Attach"]++
	if !f.rgOK(rg, &e) {
		return
	}
	g := f.groups[name]
	switch {
	case g == nil || !f.hasContainer(g, container):
		e.SetResponseError(http.StatusNotFound, "ResourceNotFound")
		return
	case g.state != "Running":
		e.SetResponseError(http.StatusConflict, "ContainerGroupTransitioning")
		return
	}
	id, pw := rand.Text(), rand.Text()
	f.attachSessions[id] = attachSession{group: name, password: pw, run: g.started}
	uri := "wss://" + strings.TrimPrefix(f.attachSrv.URL, "https://") + "/logstream/sessionId/" + id + "?api-version=1.0"
	resp.SetResponse(http.StatusOK, armcontainerinstance.ContainersClientAttachResponse{
		ContainerAttachResponse: armcontainerinstance.ContainerAttachResponse{WebSocketURI: to.Ptr(uri), Password: to.Ptr(pw)}}, nil)
	return
}

func (f *Fake) serveAttach(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	s, ok := f.attachSessions[r.PathValue("id")]
	auth := r.Header.Get("Authorization")
	if !ok || subtle.ConstantTimeCompare([]byte(auth), []byte(s.password)) != 1 {
		f.calls["attach handshake refused"]++
		f.mu.Unlock()
		http.Error(w, "unauthorized", http.StatusUnauthorized)
		return
	}
	g := f.groups[s.group]
	if g == nil || g.state != "Running" || !g.started.Equal(s.run) {
		f.mu.Unlock()
		http.Error(w, "the container's run has ended", http.StatusNotFound)
		return
	}
	sub := &attachSub{ch: make(chan []byte, attachQueue)}
	g.subs = append(g.subs, sub)
	f.calls["attach sockets"]++
	f.mu.Unlock()

	conn, err := websocket.Accept(w, r, nil)
	if err != nil {
		f.unsubscribe(s.group, sub)
		return
	}
	defer conn.CloseNow()
	ctx := conn.CloseRead(r.Context())
	for {
		select {
		case <-ctx.Done():
			f.unsubscribe(s.group, sub)
			return
		case frame, ok := <-sub.ch:
			if !ok {
				_ = conn.Close(websocket.StatusNormalClosure, "")
				return
			}
			if err := conn.Write(ctx, websocket.MessageBinary, frame); err != nil {
				f.unsubscribe(s.group, sub)
				return
			}
		}
	}
}

func (f *Fake) unsubscribe(group string, sub *attachSub) {
	f.mu.Lock()
	defer f.mu.Unlock()
	g := f.groups[group]
	if g == nil {
		return
	}
	for i, s := range g.subs {
		if s == sub {
			g.subs = append(g.subs[:i], g.subs[i+1:]...)
			close(s.ch)
			return
		}
	}
}

// closeAttach ends every attach socket and stops the endpoint.
func (f *Fake) closeAttach() {
	f.mu.Lock()
	for _, g := range f.groups {
		f.endRun(g)
	}
	f.mu.Unlock()
	f.attachSrv.Close()
}

// EmitStderr makes every running container of the service print text on
// stderr (ListLogs merges it with stdout; attach tags it 2).
func (f *Fake) EmitStderr(target, service, text string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, g := range f.groups {
		if str(g.def.Tags["alphaswarm.service"]) == service && str(g.def.Tags["alphaswarm.target"]) == target && g.state == "Running" {
			f.output(g, 2, time.Now().UTC(), text)
		}
	}
}

// DropAttach closes a group's attach sockets while its container keeps
// running, as a dropped connection or a service-side end of the stream
// would; output written meanwhile reaches only the log.
func (f *Fake) DropAttach(group string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if g := f.groups[group]; g != nil {
		f.endRun(g)
	}
}
