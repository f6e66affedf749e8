package checkpoint

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/syslog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/alphaswarm/controller/ledger"
)

// Sink is a destination outside the ledger's database for checkpoints and
// rows, one JSON Line each. Write delivers lines in order and reports
// whether all of them were taken; a failed Write is retried with the same
// lines (and possibly more), so a sink must tolerate duplicates (each line
// carries the row's seq and hash, which make it idempotent downstream).
type Sink interface {
	Write(ctx context.Context, lines [][]byte) error
	Close() error
}

// SinkConfig configures one export sink.
type SinkConfig struct {
	// Name identifies the sink (its cursor file is sink-<name>.cursor).
	Name string `json:"name"`
	// Type is "jsonl" (a file, each write fsynced), "syslog" or "webhook"
	// (POST of application/x-ndjson, any 2xx accepts).
	Type string `json:"type"`
	// Path of a jsonl sink.
	Path string `json:"path,omitempty"`
	// Network and Address of a syslog sink ("udp", "host:514"); both empty
	// for the local syslog daemon. Tag defaults to "alphaswarm-ledger".
	Network string `json:"network,omitempty"`
	Address string `json:"address,omitempty"`
	Tag     string `json:"tag,omitempty"`
	// URL of a webhook sink.
	URL string `json:"url,omitempty"`
	// Rows and Checkpoints choose what the sink receives; both by default.
	Rows        *bool `json:"rows,omitempty"`
	Checkpoints *bool `json:"checkpoints,omitempty"`
}

func (c SinkConfig) rows() bool        { return c.Rows == nil || *c.Rows }
func (c SinkConfig) checkpoints() bool { return c.Checkpoints == nil || *c.Checkpoints }

// Validate checks c, naming the field.
func (c SinkConfig) Validate() error {
	if c.Name == "" || strings.ContainsAny(c.Name, `/\ `) || c.Name == "." || c.Name == ".." {
		return fmt.Errorf("name %q: must be a non-empty word without slashes or spaces", c.Name)
	}
	switch c.Type {
	case "jsonl":
		if c.Path == "" {
			return errors.New("path: required for a jsonl sink")
		}
	case "syslog":
		if (c.Network == "") != (c.Address == "") {
			return errors.New("network and address: give both, or neither for the local syslog")
		}
	case "webhook":
		u, err := url.Parse(c.URL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("url %q: must be an http(s) URL", c.URL)
		}
		if u.User != nil {
			return errors.New("url: must not carry credentials")
		}
	default:
		return fmt.Errorf("type %q: must be jsonl, syslog or webhook", c.Type)
	}
	if !c.rows() && !c.checkpoints() {
		return errors.New("rows and checkpoints: the sink would receive nothing")
	}
	return nil
}

// OpenSink opens the sink c describes.
func OpenSink(c SinkConfig) (Sink, error) {
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("sink %s: %w", c.Name, err)
	}
	var s Sink
	switch c.Type {
	case "jsonl":
		s = &fileSink{path: c.Path}
	case "syslog":
		tag := c.Tag
		if tag == "" {
			tag = "alphaswarm-ledger"
		}
		s = &syslogSink{network: c.Network, addr: c.Address, tag: tag}
	case "webhook":
		s = &webhookSink{url: c.URL, client: &http.Client{Timeout: 10 * time.Second}}
	}
	return &configured{Sink: s, cfg: c}, nil
}

// configured carries a sink's config to the exporter.
type configured struct {
	Sink
	cfg SinkConfig
}

// Sync syncs the sink when it can.
func (c *configured) Sync() error {
	if sy, ok := c.Sink.(interface{ Sync() error }); ok {
		return sy.Sync()
	}
	return nil
}

// fileSink appends lines to a file, fsynced (Sync) before the exporter
// saves its cursor. It reopens the file after a failure, so a file removed
// or a disk replaced is picked up again.
type fileSink struct {
	path string
	mu   sync.Mutex
	f    *os.File
}

func (s *fileSink) Write(_ context.Context, lines [][]byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f == nil {
		if err := os.MkdirAll(filepath.Dir(s.path), 0o700); err != nil {
			return err
		}
		f, err := os.OpenFile(s.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
		if err != nil {
			return err
		}
		s.f = f
	}
	_, err := s.f.Write(bytes.Join(append(lines, nil), []byte("\n")))
	if err != nil {
		s.f.Close()
		s.f = nil
	}
	return err
}

// Sync makes what was written durable; the exporter calls it before it
// saves its cursor, so a cursor never claims rows the file could lose.
func (s *fileSink) Sync() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f == nil {
		return nil
	}
	err := s.f.Sync()
	if err != nil {
		s.f.Close()
		s.f = nil
	}
	return err
}

func (s *fileSink) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f != nil {
		return s.f.Close()
	}
	return nil
}

// syslogSink sends each line as one syslog message (facility local0,
// severity info), dialling again after a failure.
type syslogSink struct {
	network, addr, tag string
	mu                 sync.Mutex
	w                  *syslog.Writer
}

func (s *syslogSink) Write(_ context.Context, lines [][]byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.w == nil {
		w, err := syslog.Dial(s.network, s.addr, syslog.LOG_INFO|syslog.LOG_LOCAL0, s.tag)
		if err != nil {
			return err
		}
		s.w = w
	}
	for _, l := range lines {
		if err := s.w.Info(string(l)); err != nil {
			s.w.Close()
			s.w = nil
			return err
		}
	}
	return nil
}

func (s *syslogSink) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.w != nil {
		return s.w.Close()
	}
	return nil
}

// webhookSink POSTs the lines as one application/x-ndjson body.
type webhookSink struct {
	url    string
	client *http.Client
}

func (s *webhookSink) Write(ctx context.Context, lines [][]byte) error {
	body := bytes.Join(append(lines, nil), []byte("\n"))
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-ndjson")
	resp, err := s.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("webhook answered %s", resp.Status)
	}
	return nil
}

func (s *webhookSink) Close() error { s.client.CloseIdleConnections(); return nil }

// SinkStats are one sink's counters.
type SinkStats struct {
	Name     string `json:"name"`
	Cursor   int64  `json:"cursor"` // last row delivered
	Failures int64  `json:"failures"`
	Down     bool   `json:"down"`
}

// exporter delivers rows (from its persisted cursor) and checkpoints to one
// sink, in its own goroutine: a sink that is slow or down delays nothing
// but itself, and what it missed is read again from the ledger.
type exporter struct {
	l          *Ledger
	sink       Sink
	cfg        SinkConfig
	cursorPath string
	wake       chan struct{}

	mu       sync.Mutex
	cursor   int64
	sentCp   int64
	failures int64
	down     bool
	// pending are rows the follower offered, following the cursor; when
	// behind, the exporter reads the ledger from its cursor instead.
	pending []ledger.Record
	behind  bool
	dropped bool // an offer was ignored since the last read began

	savedCursor int64
	savedAt     time.Time
}

// offer gives the exporter rows just folded, in order. A caught-up
// exporter queues them (no read of the ledger); one that is behind (down,
// just started, or offered rows that do not follow on) ignores them.
func (e *exporter) offer(rows []ledger.Record) {
	if len(rows) == 0 || !e.cfg.rows() {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	next := e.cursor + 1 + int64(len(e.pending))
	if e.behind || rows[0].Seq != next || len(e.pending)+len(rows) > maxBuffered {
		e.behind, e.pending, e.dropped = true, nil, true
		return
	}
	e.pending = append(e.pending, rows...)
}

func newExporter(l *Ledger, s Sink) (*exporter, error) {
	c, ok := s.(*configured)
	if !ok {
		return nil, errors.New("checkpoint: sinks come from OpenSink")
	}
	dir := l.o.StateDir
	if dir == "" {
		dir = filepath.Dir(l.o.File)
	}
	e := &exporter{l: l, sink: c, cfg: c.cfg, cursorPath: filepath.Join(dir, "sink-"+c.cfg.Name+".cursor"),
		wake: make(chan struct{}, 1), behind: true}
	b, err := os.ReadFile(e.cursorPath)
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return nil, fmt.Errorf("sink %s cursor: %w", c.cfg.Name, err)
	default:
		n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
		if err != nil || n < 0 {
			return nil, fmt.Errorf("sink %s cursor %s: not a row number", c.cfg.Name, e.cursorPath)
		}
		e.cursor, e.savedCursor = n, n
	}
	e.poke() // catch up at start
	return e, nil
}

func (e *exporter) poke() {
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

func (e *exporter) stats() SinkStats {
	e.mu.Lock()
	defer e.mu.Unlock()
	return SinkStats{Name: e.cfg.Name, Cursor: e.cursor, Failures: e.failures, Down: e.down}
}

func (e *exporter) run() {
	defer e.l.expDone.Done()
	backoff := time.Duration(0)
	for {
		wake := e.wake
		var retry <-chan time.Time
		if backoff > 0 {
			// A sink that is down is retried on its own schedule, not
			// at every commit.
			retry, wake = time.After(backoff), nil
		}
		var save <-chan time.Time
		e.mu.Lock()
		if e.cursor != e.savedCursor {
			save = time.After(cursorEvery)
		}
		e.mu.Unlock()
		select {
		case <-save:
			e.saveCursor(true)
			continue
		case <-e.l.stopExp:
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			if e.deliver(ctx) == nil {
				e.saveCursor(true)
			}
			cancel()
			return
		case <-wake:
			select { // gather commits for a moment
			case <-time.After(e.l.o.FlushDelay):
			case <-e.l.stopExp:
			}
		case <-retry:
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		err := e.deliver(ctx)
		cancel()
		e.mu.Lock()
		if err != nil {
			e.failures++
			if !e.down {
				e.l.log.Warn("ledger export: sink is down; rows will be re-sent from the ledger when it answers",
					"sink", e.cfg.Name, "from_row", e.cursor+1, "err", err)
			}
			e.down = true
			backoff = min(max(2*backoff, time.Second), 30*time.Second)
		} else {
			if e.down {
				e.l.log.Info("ledger export: sink is back; caught up", "sink", e.cfg.Name, "row", e.cursor)
			}
			e.down, backoff = false, 0
		}
		e.mu.Unlock()
	}
}

// deliver sends the rows after the cursor, a page at a time, then the last
// checkpoint if it is newer than the last one sent.
func (e *exporter) deliver(ctx context.Context) error {
	if e.cfg.rows() {
		if err := e.deliverRows(ctx); err != nil {
			e.mu.Lock()
			e.behind, e.pending = true, nil // re-read from the cursor
			e.mu.Unlock()
			return err
		}
	}
	if e.cfg.checkpoints() {
		cp := e.l.LastCheckpoint()
		e.mu.Lock()
		sent := e.sentCp
		e.mu.Unlock()
		if cp != nil && cp.Seq > sent {
			b, _ := json.Marshal(Line{Type: "checkpoint", Checkpoint: cp})
			if err := e.sink.Write(ctx, [][]byte{b}); err != nil {
				return err
			}
			e.mu.Lock()
			e.sentCp = cp.Seq
			e.mu.Unlock()
		}
	}
	return nil
}

// deliverRows sends the queued rows, or, when behind, the rows after the
// cursor read from the ledger a page at a time until caught up.
func (e *exporter) deliverRows(ctx context.Context) error {
	e.mu.Lock()
	behind, pending := e.behind, e.pending
	e.pending = nil
	e.mu.Unlock()
	if !behind {
		if len(pending) == 0 {
			return nil
		}
		return e.send(ctx, pending)
	}
	for {
		e.mu.Lock()
		after := e.cursor
		e.dropped = false
		e.mu.Unlock()
		page, err := e.l.inner.Query(ctx, ledger.Filter{Cursor: fmt.Sprintf("s%d", after), Limit: ledger.MaxLimit})
		if err != nil {
			return fmt.Errorf("reading the ledger: %w", err)
		}
		if len(page.Records) > 0 {
			if err := e.send(ctx, page.Records); err != nil {
				return err
			}
		}
		if page.Next == "" {
			e.mu.Lock()
			caughtUp := !e.dropped // else rows were offered (so committed) after this read began
			if caughtUp {
				e.behind, e.pending = false, nil
			}
			e.mu.Unlock()
			if caughtUp {
				return nil
			}
		}
	}
}

// send writes rows (which follow the cursor) and moves the cursor.
func (e *exporter) send(ctx context.Context, rows []ledger.Record) error {
	lines := make([][]byte, len(rows))
	for i := range rows {
		lines[i] = appendRowLine(nil, &rows[i])
	}
	if err := e.sink.Write(ctx, lines); err != nil {
		return err
	}
	last := rows[len(rows)-1].Seq
	e.mu.Lock()
	e.cursor = last
	e.mu.Unlock()
	return e.saveCursor(false)
}

// cursorEvery is how often an exporter makes its sink durable and saves
// its cursor: a crash re-sends at most that much (duplicates, never gaps).
const cursorEvery = 30 * time.Second

// saveCursor syncs the sink (when it can) and saves the cursor, at most
// every cursorEvery unless now.
func (e *exporter) saveCursor(now bool) error {
	e.mu.Lock()
	cur, saved, at := e.cursor, e.savedCursor, e.savedAt
	e.mu.Unlock()
	if cur == saved || (!now && time.Since(at) < cursorEvery) {
		return nil
	}
	if sy, ok := e.sink.(interface{ Sync() error }); ok {
		if err := sy.Sync(); err != nil {
			return err
		}
	}
	if err := writeCursor(e.cursorPath, cur); err != nil {
		e.l.log.Warn("ledger export: saving the cursor failed (rows may be sent twice)", "sink", e.cfg.Name, "err", err)
	}
	e.mu.Lock()
	e.savedCursor, e.savedAt = cur, time.Now()
	e.mu.Unlock()
	return nil
}

// writeCursor replaces the cursor file (write and rename: never torn).
func writeCursor(path string, seq int64) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(strconv.FormatInt(seq, 10)+"\n"), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
