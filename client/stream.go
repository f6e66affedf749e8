package client

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"iter"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/alphaswarm/controller/workload"
)

// WithReconnect makes the streams opened with ctx (Metrics, Logs with
// Follow, ServiceEvents) survive a lost connection: when the connection
// drops, the server ends the stream because it is shutting down, or a
// reconnect is answered 502/503/504, the client connects again to the same
// URL — behind a load balancer, usually another replica — with a backoff
// from 100 ms doubling to 5 s, until a connection succeeds or giveUp has
// passed since the last working one. Values the client already yielded
// are not yielded again where the stream allows telling: a logs stream
// resumes from the last line's time and skips lines it has already
// yielded; a metrics stream skips samples not newer than the last; the
// services stream skips a status identical to the last one of the same
// service (the server sends every status again on a new connection).
//
// The first connection is not retried: an unreachable server or a refused
// request is reported at once, as without this option. notify, when not
// nil, is called (on the iterating goroutine) each time a working
// connection is lost, with why, before reconnecting.
func WithReconnect(ctx context.Context, giveUp time.Duration, notify func(lost error)) context.Context {
	return context.WithValue(ctx, reconnectKey, reconnectOpt{giveUp: giveUp, notify: notify})
}

type reconnectOpt struct {
	giveUp time.Duration
	notify func(error)
}

// Reconnect backoff bounds.
const (
	reconnectFirst = 100 * time.Millisecond
	reconnectMax   = 5 * time.Second
)

// resume says how a stream continues on a new connection.
type resume[T any] struct {
	// query returns the query of the next connection (given the first).
	query func(first url.Values) url.Values
	// fresh reports whether v was not yielded before, and records it.
	fresh func(v T) bool
}

// ending is how one connection's event stream ended.
type ending int

const (
	endFinished ending = iota // an 'end' event with id "end", or an error event: do not reconnect
	endStopped                // the consumer stopped or ctx ended
	endLost                   // the connection dropped or the server is shutting down: reconnect
)

// stream reads a server-sent event stream, yielding the data of events
// named event. An "error" event ends the stream with its error; with
// WithReconnect, a lost connection is resumed as rs says.
func stream[T any](c *Client, ctx context.Context, path string, q url.Values, event string, rs resume[T]) iter.Seq2[T, error] {
	return func(yield func(T, error) bool) {
		var zero T
		ro, reconnect := ctx.Value(reconnectKey).(reconnectOpt)
		giveUp := ro.giveUp
		query, backoff, lastOK := q, reconnectFirst, time.Now()
		for attempt := 0; ; attempt++ {
			resp, err := c.openStream(ctx, path, query)
			if err == nil {
				lastOK, backoff = time.Now(), reconnectFirst
				var end ending
				end, err = readEvents(ctx, resp.Body, event, func(v T) bool {
					if reconnect && rs.fresh != nil && !rs.fresh(v) {
						return true
					}
					return yield(v, nil)
				})
				resp.Body.Close()
				lastOK = time.Now() // it worked until now
				switch {
				case end == endStopped:
					return
				case end == endFinished && err == nil:
					return
				case end == endFinished:
					if !reconnect || workload.CodeOf(err) != workload.Unavailable {
						yield(zero, err)
						return
					}
				case !reconnect:
					if err != nil && ctx.Err() == nil {
						yield(zero, err)
					}
					return
				}
				if ro.notify != nil && ctx.Err() == nil {
					if err == nil {
						err = workload.Errorf(workload.Unavailable, "the server ended the stream (shutting down)")
					}
					ro.notify(err)
				}
			} else if !reconnect || attempt == 0 || !retryable(err) || time.Since(lastOK) > giveUp {
				if ctx.Err() == nil {
					yield(zero, err)
				}
				return
			}
			if ctx.Err() != nil {
				return
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(backoff*2, reconnectMax)
			if rs.query != nil {
				query = rs.query(q)
			}
		}
	}
}

// retryable reports whether a failed (re)connection may succeed later:
// the server could not be reached or said it is unavailable.
func retryable(err error) bool {
	switch workload.CodeOf(err) {
	case workload.Unavailable, workload.Timeout:
		return true
	}
	return false
}

// openStream makes one SSE request; a refusal is the server's error.
func (c *Client) openStream(ctx context.Context, path string, q url.Values) (*http.Response, error) {
	req, err := c.request(ctx, "GET", path, q, nil, "")
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "text/event-stream")
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, workload.Errorf(workload.Unavailable, "cannot reach the server at %s: %w", c.base, err)
	}
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		return resp, nil
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNoContent {
		// A finished stream (Last-Event-ID: end); nothing more will come.
		return nil, workload.Errorf(workload.NotFound, "the stream has ended")
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err := workload.DecodeEnvelope(b, nil); err != nil {
		return nil, err
	}
	switch resp.StatusCode {
	case http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		// A proxy in front of a replica that is gone.
		return nil, workload.Errorf(workload.Unavailable, "HTTP %d from %s", resp.StatusCode, c.base)
	}
	return nil, workload.Errorf(workload.Internal, "HTTP %d: expected an event stream", resp.StatusCode)
}

// readEvents parses one connection's events, passing the data of events
// named event to emit, and says how the stream ended.
func readEvents[T any](ctx context.Context, body io.Reader, event string, emit func(T) bool) (ending, error) {
	sc := bufio.NewScanner(body)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	name, id := "", ""
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			name, id = "", ""
		case strings.HasPrefix(line, "id: "):
			id = line[len("id: "):]
		case strings.HasPrefix(line, "event: "):
			name = line[len("event: "):]
		case strings.HasPrefix(line, "data: "):
			data := []byte(line[len("data: "):])
			switch name {
			case event:
				var v T
				if err := json.Unmarshal(data, &v); err != nil {
					return endFinished, fmt.Errorf("decoding %s event: %w", event, err)
				}
				if !emit(v) {
					return endStopped, nil
				}
			case "error":
				return endFinished, workload.DecodeEnvelope(data, nil)
			case "end":
				if id == "end" || id == "" {
					return endFinished, nil // the stream is over (servers before ids sent none)
				}
				return endLost, nil // the server is shutting down: another replica may go on
			}
		}
	}
	if ctx.Err() != nil {
		return endStopped, nil
	}
	if err := sc.Err(); err != nil {
		return endLost, workload.Errorf(workload.Unavailable, "stream interrupted: %w", err)
	}
	return endLost, nil // closed without an end event
}
