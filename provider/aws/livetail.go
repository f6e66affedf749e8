package aws

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	sdkaws "github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs/schemas"
	logtypes "github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs/types"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"
	"github.com/aws/smithy-go/transport/http/protocol/awsjson"

	"github.com/alphaswarm/controller/workload"
)

// lineKey identifies a log line across the two sources that can deliver
// it, FilterLogEvents (which has event ids) and StartLiveTail (which has
// none): its stream, timestamp and text.
func lineKey(stream string, ts int64, msg string) string {
	return stream + "\x00" + strconv.FormatInt(ts, 10) + "\x00" + msg
}

// lineDedup remembers, per source, the lines yielded within logLag of the
// newest one, so that a line the other source delivers again is skipped
// once. Two identical lines (same stream, millisecond and text) from the
// two sources count as one; from one source they are both kept.
type lineDedup struct {
	live, polled map[string]int64 // key -> lines yielded and not yet matched
	ts           map[string]int64 // key -> its timestamp, for pruning
	liveMax      int64            // newest timestamp yielded from live tail
	max          int64            // newest timestamp yielded
	pruned       int64            // max at the last prune
}

func newLineDedup() *lineDedup {
	return &lineDedup{live: map[string]int64{}, polled: map[string]int64{}, ts: map[string]int64{}}
}

func (d *lineDedup) add(m map[string]int64, key string, ts int64) {
	m[key]++
	d.ts[key] = ts
	d.max = max(d.max, ts)
	// Prune once the newest line is a second past the last prune, not on
	// every new millisecond (at 500 lines/s the window holds ~10k keys).
	if d.max-d.pruned >= 1000 {
		d.pruned = d.max
		cut := d.max - 2*logLag.Milliseconds()
		for k, t := range d.ts {
			if t < cut {
				delete(d.ts, k)
				delete(d.live, k)
				delete(d.polled, k)
			}
		}
	}
}

// take consumes one occurrence of key from m, reporting whether there was one.
func take(m map[string]int64, key string) bool {
	if m[key] == 0 {
		return false
	}
	m[key]--
	return true
}

// liveResult says how a live-tail session ended.
type liveResult int

const (
	liveStopped     liveResult = iota // the consumer stopped or ctx ended: stop following
	liveEnded                         // CloudWatch ended the session (its 3 h limit, an idle timeout): start another
	liveNoGroup                       // the log group does not exist yet: poll, then try again
	liveUnavailable                   // StartLiveTail refused (permissions, endpoint): poll from now on
	liveBroken                        // the session failed to start or its stream broke: start another, poll after maxBroken in a row
	liveSampled                       // CloudWatch began sampling (> 500 lines/s): poll from now on, nothing dropped
)

// follow yields the lines that arrive after the first read: through
// StartLiveTail sessions while CloudWatch serves them, otherwise by polling
// FilterLogEvents every pollInterval. Each switch between the two re-reads
// from logLag before the newest line seen and skips what was yielded, so
// no line is dropped or repeated.
func (p *Provider) follow(ctx context.Context, name string, cur *logCursor, yield func(workload.LogLine, error) bool) {
	d := newLineDedup()
	live := p.liveTailOn()
	every := 2 * time.Second
	if p.opts.PollInterval > 0 {
		every = p.opts.PollInterval.D()
	}
	failures := 0
	poll := func() bool {
		cur.max = max(cur.max, d.liveMax)
		evs, err := p.filter(ctx, name, cur)
		if err != nil {
			if ctx.Err() != nil {
				return false
			}
			// A throttled or failed read is read again next time (the
			// cursor did not move); only a run of them ends the follow.
			switch workload.CodeOf(err) {
			case workload.RateLimited, workload.Unavailable, workload.Timeout:
				if failures++; failures < maxPollFailures {
					return true
				}
			}
			yield(workload.LogLine{}, err)
			return false
		}
		failures = 0
		for _, e := range evs {
			key := lineKey(sdkaws.ToString(e.LogStreamName), sdkaws.ToInt64(e.Timestamp), sdkaws.ToString(e.Message))
			if take(d.live, key) {
				continue
			}
			d.add(d.polled, key, sdkaws.ToInt64(e.Timestamp))
			if !yield(toLine(e), nil) {
				return false
			}
		}
		return true
	}
	wait := func() bool {
		select {
		case <-ctx.Done():
			return false
		case <-time.After(every):
			return true
		}
	}
	broken := 0
	for {
		if live {
			r := p.liveTail(ctx, name, d, every, poll, yield)
			if r == liveBroken {
				broken++
			} else {
				broken = 0
			}
			switch {
			case r == liveStopped:
				return
			case r == liveEnded:
				continue
			case r == liveBroken && broken < maxBroken:
				// The next session's catch-up read covers the gap.
				select {
				case <-ctx.Done():
					return
				case <-time.After(time.Duration(broken) * 50 * time.Millisecond):
				}
				continue
			case r == liveNoGroup:
				if !wait() || !poll() {
					return
				}
				continue
			default: // unavailable, sampled, broken maxBroken times in a row
				live = false
			}
		}
		if !wait() || !poll() {
			return
		}
	}
}

// liveTail runs one StartLiveTail session on the target's log group, for
// the service's streams. Once the session has started it polls (catchUp),
// covering what arrived between the last read and the session's start,
// and polls again every `every` while the session is younger than logLag:
// FilterLogEvents finds a line only some time after CloudWatch ingested
// it, so a line ingested just before the session started may be neither
// in the first catch-up read nor in the session. It yields the session's
// lines, skipping those the polls already yielded (and the polls skip the
// session's).
func (p *Provider) liveTail(ctx context.Context, name string, d *lineDedup, every time.Duration, catchUp func() bool,
	yield func(workload.LogLine, error) bool) liveResult {
	arn, err := p.logGroupARN(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return liveStopped
		}
		if errors.Is(err, errNoLogGroup) {
			return liveNoGroup
		}
		return liveFailure(err)
	}
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	out, err := p.logs.StartLiveTail(sctx, &cloudwatchlogs.StartLiveTailInput{
		LogGroupIdentifiers:   []string{arn},
		LogStreamNamePrefixes: []string{name + "/"},
	}, p.liveTailOptions)
	if err != nil {
		if ctx.Err() != nil {
			return liveStopped
		}
		return liveFailure(err)
	}
	stream := out.GetStream()
	defer stream.Close()
	var (
		started    time.Time
		young      <-chan time.Time // ticks while the session is younger than logLag
		youngTimer *time.Ticker
		events     = stream.Events()
	)
	defer func() {
		if youngTimer != nil {
			youngTimer.Stop()
		}
	}()
loop:
	for {
		var ev logtypes.StartLiveTailResponseStream
		select {
		case <-ctx.Done():
			return liveStopped
		case <-young:
			if !catchUp() {
				return liveStopped
			}
			if time.Since(started) > logLag {
				youngTimer.Stop()
				young = nil
			}
			continue
		case e, ok := <-events:
			if !ok {
				break loop
			}
			ev = e
		}
		switch v := ev.(type) {
		case *logtypes.StartLiveTailResponseStreamMemberSessionStart:
			started = time.Now()
			if !catchUp() {
				return liveStopped
			}
			youngTimer = time.NewTicker(every)
			young = youngTimer.C
		case *logtypes.StartLiveTailResponseStreamMemberSessionUpdate:
			for _, r := range v.Value.SessionResults {
				st, ts, msg := sdkaws.ToString(r.LogStreamName), sdkaws.ToInt64(r.Timestamp), sdkaws.ToString(r.Message)
				key := lineKey(st, ts, msg)
				if take(d.polled, key) {
					continue
				}
				d.add(d.live, key, ts)
				d.liveMax = max(d.liveMax, ts)
				line := workload.LogLine{Time: time.UnixMilli(ts), Instance: st[strings.LastIndex(st, "/")+1:],
					Stream: "stdout", Text: strings.TrimSuffix(msg, "\n")}
				if !yield(line, nil) {
					return liveStopped
				}
			}
			if m := v.Value.SessionMetadata; m != nil && m.Sampled {
				return liveSampled
			}
		}
	}
	if ctx.Err() != nil {
		return liveStopped
	}
	// A session that failed, never started, or ended at once is broken:
	// it is retried with a backoff, and polling takes over if it goes on.
	// CloudWatch ends every session after three hours with a
	// SessionTimeoutException event ("A SessionTimeoutException object is
	// returned when the session times out, after it has been kept open
	// for three hours", StartLiveTail API reference): that is a normal
	// end, not a failure.
	// The SDK surfaces the exception frame as the stream's error: the
	// modeled *types.SessionTimeoutException, or (aws-sdk-go-v2 with
	// schema-based serde) a smithy API error carrying its code.
	err = stream.Err()
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) && apiErr.ErrorCode() == "SessionTimeoutException" {
		err = nil
	}
	if err != nil || started.IsZero() || time.Since(started) < minSession {
		return liveBroken
	}
	return liveEnded
}

// minSession: a session that CloudWatch ends sooner than this after it
// started counts as broken, so that sessions ending at once cannot make
// a hot loop.
const minSession = 50 * time.Millisecond

// maxPollFailures is how many FilterLogEvents reads in a row may be
// throttled or fail transiently (after the SDK's own retries) before the
// follow ends with the error.
const maxPollFailures = 5

// maxBroken is how many live-tail sessions in a row may fail before
// following falls back to polling: a new session, whose catch-up read
// covers the gap, is the cure for a dropped connection.
const maxBroken = 5

// liveFailure classifies a failed DescribeLogGroups or StartLiveTail: a
// refusal (permissions, an endpoint without live tail) is for good, a
// log group not there yet is polled for, anything else (throttling, a
// dropped connection, a timeout) is retried like a broken session.
func liveFailure(err error) liveResult {
	switch workload.CodeOf(mapErr("", err)) {
	case workload.NotFound:
		return liveNoGroup
	case workload.PermissionDenied, workload.Unauthenticated, workload.Unsupported, workload.InvalidArgument:
		return liveUnavailable
	}
	return liveBroken
}

var errNoLogGroup = errors.New("the log group does not exist yet")

// logGroupARN finds the ARN of the target's log group (StartLiveTail names
// log groups by ARN).
func (p *Provider) logGroupARN(ctx context.Context) (string, error) {
	pg := cloudwatchlogs.NewDescribeLogGroupsPaginator(p.logs, &cloudwatchlogs.DescribeLogGroupsInput{
		LogGroupNamePrefix: sdkaws.String(p.opts.LogGroup),
	})
	for pg.HasMorePages() {
		page, err := pg.NextPage(ctx)
		if err != nil {
			return "", mapErr("DescribeLogGroups "+p.opts.LogGroup, err)
		}
		for _, g := range page.LogGroups {
			if sdkaws.ToString(g.LogGroupName) != p.opts.LogGroup {
				continue
			}
			if arn := sdkaws.ToString(g.LogGroupArn); arn != "" {
				return arn, nil
			}
			return strings.TrimSuffix(sdkaws.ToString(g.Arn), ":*"), nil
		}
	}
	return "", errNoLogGroup
}

// liveTailOptions adapt the client for StartLiveTail sessions:
//
//   - an HTTP client of their own (liveHTTP), without the 2-minute request
//     timeout of the others (a session lasts up to 3 hours) and without
//     keep-alive (a session holds its connection for hours), that sends
//     a copy of the request body (detachedBody);
//   - a protocol codec of their own: the client's awsjson codec keeps
//     one event-stream decoder and payload buffer for every stream it
//     reads (smithy-go v1.28.9), so a session still being torn down
//     while the next starts would share them;
//   - with BaseEndpoint set, no "stream-" host prefix, which the SDK
//     otherwise adds (streaming-logs.<region>.amazonaws.com is the real
//     endpoint).
func (p *Provider) liveTailOptions(o *cloudwatchlogs.Options) {
	o.HTTPClient = detachedBody{p.liveHTTP}
	o.Protocol = awsjson.New11(schemas.Logs_20140328)
	if p.opts.BaseEndpoint == "" {
		return
	}
	o.APIOptions = append(o.APIOptions, func(stack *middleware.Stack) error {
		return stack.Initialize.Add(middleware.InitializeMiddlewareFunc("alphaswarmNoHostPrefix",
			func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
				return next.HandleInitialize(smithyhttp.DisableEndpointHostPrefix(ctx, true), in)
			}), middleware.Before)
	})
}

// newLiveHTTP is the HTTP client of live-tail sessions (see liveTailOptions).
func newLiveHTTP() *awshttp.BuildableClient {
	return awshttp.NewBuildableClient().WithTransportOptions(func(tr *http.Transport) {
		tr.DisableKeepAlives = true
		tr.ResponseHeaderTimeout = time.Minute
	})
}

// detachedBody hands the transport a copy of the request body instead of
// the SDK's request stream. The transport's writer may still be closing
// the body it was given after the response has come back, and the SDK
// closes its stream once the call returns: with aws-sdk-go-v2 1.48 and
// smithy-go 1.28.9 the writer then saw an error and closed the
// connection, killing a live-tail session a millisecond after it started
// (one session in five against the in-process fake; found by tracing the
// connection's Close to persistConn.writeLoop). A StartLiveTail body is a
// few hundred bytes.
type detachedBody struct {
	c interface {
		Do(*http.Request) (*http.Response, error)
	}
}

func (d detachedBody) Do(r *http.Request) (*http.Response, error) {
	if r.Body != nil && r.Body != http.NoBody {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			return nil, err
		}
		r = r.Clone(r.Context())
		r.Body = io.NopCloser(bytes.NewReader(b))
		r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }
		r.ContentLength = int64(len(b))
	}
	return d.c.Do(r)
}
