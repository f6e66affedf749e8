package azure

import (
	"bytes"
	"context"
	"net/http"
	"sync"
	"time"

	"github.com/coder/websocket"

	"github.com/alphaswarm/controller/provider"
	"github.com/alphaswarm/controller/workload"
)

// ACI's Containers_Attach (POST .../containers/{container}/attach) answers
// a WebSocket URI and a password for the container's output stream. The
// password goes in the Authorization header of the handshake (the REST
// spec's description of ContainerAttachResponse.password: "Send as an
// Authorization header value when connecting to the websocketUri"; the
// Add-AzContainerInstanceOutput documentation says the same). Every
// message carries output, its first byte naming the stream (1 stdout,
// 2 stderr) and the rest the bytes written (as DefangLabs/defang's ACI log
// tail reads it). Nothing documents whether the stream replays history or
// when it ends; the provider takes it as live output ending with the run,
// reads history with ListLogs, and attaches again when a socket ends.

// attachMaxMessage bounds one attach message.
const attachMaxMessage = 1 << 20

// attachLine is one line of attached output.
type attachLine struct {
	t      time.Time // when it arrived (attach carries no timestamps)
	stream string
	text   string
}

// attachSession is one open attach socket of a group's container run.
type attachSession struct {
	cancel context.CancelFunc
	done   chan struct{} // closed when the reader has ended

	mu      sync.Mutex
	lines   []attachLine
	partial [3][]byte // per stream, output after the last newline
	ended   bool
}

// attach opens the output stream of a group's container. notify gets a
// value (without blocking) whenever lines arrive or the stream ends.
func (p *Provider) attach(ctx context.Context, group string, notify chan struct{}) (*attachSession, error) {
	resp, err := p.containers.Attach(ctx, p.opts.ResourceGroup, group, containerName, nil)
	if err != nil {
		return nil, mapErr("attach to the output of "+group, err)
	}
	if resp.WebSocketURI == nil || resp.Password == nil {
		return nil, provider.Errorf(Name, workload.ProviderError, "attach to the output of %s: no WebSocket URI or password in the response", group)
	}
	sctx, cancel := context.WithCancel(context.Background())
	dctx, dcancel := context.WithTimeout(ctx, 30*time.Second)
	defer dcancel()
	conn, _, err := websocket.Dial(dctx, *resp.WebSocketURI, &websocket.DialOptions{HTTPClient: p.attachClient,
		HTTPHeader: http.Header{"Authorization": {*resp.Password}}})
	if err != nil {
		cancel()
		// The password is in no error: the dial error names the URI only.
		return nil, provider.Wrap(Name, as(workload.Unavailable, ""), err, "open the output stream of "+group)
	}
	conn.SetReadLimit(attachMaxMessage)
	s := &attachSession{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		defer conn.CloseNow()
		for {
			_, msg, err := conn.Read(sctx)
			if err != nil {
				s.end()
				signal(notify)
				return
			}
			if len(msg) == 0 {
				continue
			}
			s.add(msg[0], msg[1:], time.Now().UTC())
			signal(notify)
		}
	}()
	return s, nil
}

func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// add splits output into lines; a partial line waits for its newline.
func (s *attachSession) add(fd byte, b []byte, t time.Time) {
	stream, i := "stdout", 1
	if fd == 2 {
		stream, i = "stderr", 2
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	buf := append(s.partial[i], b...)
	for {
		j := bytes.IndexByte(buf, '\n')
		if j < 0 {
			break
		}
		s.lines = append(s.lines, attachLine{t: t, stream: stream, text: string(bytes.TrimSuffix(buf[:j], []byte("\r")))})
		buf = buf[j+1:]
	}
	s.partial[i] = append([]byte(nil), buf...)
}

// end marks the stream ended; partial lines become lines.
func (s *attachSession) end() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, b := range s.partial {
		if len(b) > 0 {
			stream := "stdout"
			if i == 2 {
				stream = "stderr"
			}
			s.lines = append(s.lines, attachLine{t: time.Now().UTC(), stream: stream, text: string(b)})
			s.partial[i] = nil
		}
	}
	s.ended = true
}

// take returns the lines received since the last take, and whether the
// stream has ended (no line will follow).
func (s *attachSession) take() ([]attachLine, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := s.lines
	s.lines = nil
	return out, s.ended
}

// close ends the session and waits for its reader.
func (s *attachSession) close() {
	s.cancel()
	<-s.done
}

// overlap is the largest k such that the last k of history are the first
// k of next: the lines an attach stream delivered that a ListLogs read made
// after it opened already holds.
func overlap(history []logLine, next []attachLine) int {
	for k := min(len(history), len(next)); k > 0; k-- {
		match := true
		for i := range k {
			if history[len(history)-k+i].text != next[i].text {
				match = false
				break
			}
		}
		if match {
			return k
		}
	}
	return 0
}

// resume is how many lines of a window read after a dropped stream were
// already emitted: the window is searched for the latest run of the
// newest emitted texts (up to resumeMatch of them); -1 when none is found.
func resume(window []logLine, recent []string) int {
	k := min(len(recent), resumeMatch)
	if k == 0 {
		return -1
	}
	tail := recent[len(recent)-k:]
	for j := len(window) - 1; j >= k-1; j-- {
		match := true
		for i := range k {
			if window[j-k+1+i].text != tail[i] {
				match = false
				break
			}
		}
		if match {
			return j + 1
		}
	}
	return -1
}

// resumeMatch is how many of the newest emitted lines locate the resume
// point in a window; recentLines how many are kept.
const (
	resumeMatch = 10
	recentLines = 64
)
