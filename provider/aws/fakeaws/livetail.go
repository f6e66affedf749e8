package fakeaws

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/aws/smithy-go/eventstream"
)

// LiveTailOptions shape the StartLiveTail sessions the fake serves.
type LiveTailOptions struct {
	// Disabled answers StartLiveTail with AccessDeniedException, as an
	// account without logs:StartLiveTail permission does.
	Disabled bool
	// Interval is how often a session sends a sessionUpdate; default
	// 100ms (CloudWatch sends about one a second).
	Interval time.Duration
	// MaxUpdates stands for the session time limit: after that many
	// updates the session ends with a SessionTimeoutException exception
	// frame, as CloudWatch ends every session after three hours ("A
	// SessionTimeoutException object is returned when the session times
	// out, after it has been kept open for three hours", StartLiveTail,
	// CloudWatch Logs API reference; aws-sdk-go-v2
	// service/cloudwatchlogs/api_op_StartLiveTail.go); 0 = never.
	MaxUpdates int
	// StartDelay is how long a session takes to start: events ingested
	// meanwhile are not part of it (they precede its sessionStart).
	StartDelay time.Duration
	// SampleAbove marks an update sampled and drops all but its first
	// SampleAbove events when it would carry more (CloudWatch samples
	// above 500 events a second); 0 = never.
	SampleAbove int
}

// SetLiveTail changes how the next StartLiveTail sessions behave.
func (f *Fake) SetLiveTail(o LiveTailOptions) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.liveTail = o
}

// serveLiveTail answers Logs_20140328.StartLiveTail: an AWS event stream
// (application/vnd.amazon.eventstream) of an initial-response, a
// sessionStart and then a sessionUpdate every Interval carrying the events
// ingested since the previous one, until the client goes away.
func (f *Fake) serveLiveTail(w http.ResponseWriter, r *http.Request, in map[string]any) {
	f.mu.Lock()
	o := f.liveTail
	f.mu.Unlock()
	if o.Disabled {
		writeJSONError(w, errf(400, "AccessDeniedException", "User is not authorized to perform: logs:StartLiveTail"))
		return
	}
	var groups, prefixes []string
	for _, g := range list(in, "logGroupIdentifiers") {
		s, _ := g.(string)
		groups = append(groups, s)
	}
	for _, p := range list(in, "logStreamNamePrefixes") {
		s, _ := p.(string)
		prefixes = append(prefixes, s)
	}
	if len(groups) == 0 || len(groups) > 10 {
		writeJSONError(w, errf(400, "InvalidParameterException", "logGroupIdentifiers must hold 1 to 10 log groups"))
		return
	}
	if len(prefixes) > 0 && len(groups) != 1 {
		writeJSONError(w, errf(400, "InvalidParameterException", "logStreamNamePrefixes needs exactly one log group"))
		return
	}
	// A log group is named by its ARN (arn:aws:logs:R:A:log-group:NAME);
	// a bare name is taken as well.
	names := make([]string, len(groups))
	f.mu.Lock()
	for i, g := range groups {
		names[i] = g
		if _, n, ok := strings.Cut(g, ":log-group:"); ok {
			names[i] = n
		}
		if _, ok := f.logs[names[i]]; !ok {
			f.mu.Unlock()
			writeJSONError(w, errf(400, "ResourceNotFoundException", "The specified log group does not exist."))
			return
		}
	}
	f.sessions++
	session := fmt.Sprintf("fake-session-%d", f.sessions)
	f.mu.Unlock()
	if o.StartDelay > 0 {
		select {
		case <-r.Context().Done():
			return
		case <-time.After(o.StartDelay):
		}
	}
	// The session sees what is ingested from its start on.
	cursor := make(map[string]int, len(names))
	f.mu.Lock()
	for _, n := range names {
		cursor[n] = len(f.logs[n])
	}
	f.mu.Unlock()

	interval := o.Interval
	if interval <= 0 {
		interval = 100 * time.Millisecond
	}
	w.Header().Set("Content-Type", "application/vnd.amazon.eventstream")
	w.Header().Set("X-Amzn-Requestid", "fake-request")
	w.WriteHeader(http.StatusOK)
	flusher, _ := w.(http.Flusher)
	enc := eventstream.NewEncoder()
	send := func(eventType string, payload any) bool {
		b, _ := json.Marshal(payload)
		var msg eventstream.Message
		msg.Headers.Set(eventstream.MessageTypeHeader, eventstream.StringValue(eventstream.EventMessageType))
		msg.Headers.Set(eventstream.EventTypeHeader, eventstream.StringValue(eventType))
		msg.Headers.Set(eventstream.ContentTypeHeader, eventstream.StringValue("application/json"))
		msg.Payload = b
		var buf bytes.Buffer
		if err := enc.Encode(&buf, msg); err != nil {
			return false
		}
		if _, err := w.Write(buf.Bytes()); err != nil {
			return false
		}
		if flusher != nil {
			flusher.Flush()
		}
		return true
	}
	if !send("initial-response", map[string]any{}) {
		return
	}
	if !send("sessionStart", map[string]any{"requestId": "fake-request", "sessionId": session,
		"logGroupIdentifiers": groups, "logStreamNamePrefixes": orEmptyS(prefixes), "logEventFilterPattern": ""}) {
		return
	}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for n := 1; o.MaxUpdates == 0 || n <= o.MaxUpdates; n++ {
		select {
		case <-r.Context().Done():
			return
		case <-tick.C:
		}
		var results []any
		f.mu.Lock()
		for i, name := range names {
			evs := f.logs[name]
			for _, e := range evs[cursor[name]:] {
				if !hasAnyPrefix(e.stream, prefixes) {
					continue
				}
				results = append(results, map[string]any{"logStreamName": e.stream, "logGroupIdentifier": groups[i],
					"message": e.message, "timestamp": e.ts, "ingestionTime": e.ingested})
			}
			cursor[name] = len(evs)
		}
		f.mu.Unlock()
		sampled := o.SampleAbove > 0 && len(results) > o.SampleAbove
		if sampled {
			results = results[:o.SampleAbove]
		}
		if !send("sessionUpdate", map[string]any{"sessionMetadata": map[string]any{"sampled": sampled},
			"sessionResults": orEmpty(results)}) {
			return
		}
	}
	// The time limit: an exception message (":message-type" exception,
	// ":exception-type" the modeled error's name, the AWS event stream
	// encoding the SDK's eventstream reader turns into the stream's error).
	var msg eventstream.Message
	msg.Headers.Set(eventstream.MessageTypeHeader, eventstream.StringValue(eventstream.ExceptionMessageType))
	msg.Headers.Set(eventstream.ExceptionTypeHeader, eventstream.StringValue("SessionTimeoutException"))
	msg.Headers.Set(eventstream.ContentTypeHeader, eventstream.StringValue("application/json"))
	msg.Payload = []byte(`{"message":"Live Tail session has ended as the maximum session duration of 3 hours has been reached."}`)
	var buf bytes.Buffer
	if err := enc.Encode(&buf, msg); err == nil {
		_, _ = w.Write(buf.Bytes())
		if flusher != nil {
			flusher.Flush()
		}
	}
}

func hasAnyPrefix(s string, prefixes []string) bool {
	if len(prefixes) == 0 {
		return true
	}
	for _, p := range prefixes {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}
