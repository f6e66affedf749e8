package fakegcp

import (
	"context"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"cloud.google.com/go/logging/apiv2/loggingpb"
	"google.golang.org/genproto/googleapis/api/monitoredres"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// BreakTails ends every open TailLogEntries stream with err (nil: a clean
// end, io.EOF at the client).
func (f *Server) BreakTails(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.tailGen++
	f.tailErr = err
	close(f.logCond)
	f.logCond = make(chan struct{})
}

// SuppressTail makes the next TailLogEntries batch (of any stream) be
// dropped and reported only as SuppressionInfo (reason RATE_LIMIT), as
// Cloud Logging does when a tail exceeds its rate.
func (f *Server) SuppressTail() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.suppress = true
}

// OpenTails is how many TailLogEntries streams are open.
func (f *Server) OpenTails() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.tails
}

// EmitLog makes every running instance of service print text.
func (f *Server) EmitLog(name, text string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, s := range f.services {
		if shortName(s.svc.Name) == name {
			for _, id := range s.instances {
				f.logLocked(s, id, text)
			}
		}
	}
}

func (f *Server) logLocked(s *service, instance, text string) {
	parts := strings.Split(s.svc.Name, "/") // projects/p/locations/r/services/s
	f.logs = append(f.logs, &loggingpb.LogEntry{
		LogName:  "projects/" + parts[1] + "/logs/run.googleapis.com%2Fstdout",
		InsertId: randHex(8),
		Resource: &monitoredres.MonitoredResource{Type: "cloud_run_revision", Labels: map[string]string{
			"project_id": parts[1], "location": parts[3], "service_name": parts[5], "revision_name": s.instRev, "configuration_name": parts[5]}},
		Timestamp:        timestamppb.Now(),
		Labels:           map[string]string{"instanceId": instance},
		Payload:          &loggingpb.LogEntry_TextPayload{TextPayload: text},
		ReceiveTimestamp: timestamppb.Now(),
	})
	close(f.logCond)
	f.logCond = make(chan struct{})
}

type loggingService struct {
	loggingpb.UnimplementedLoggingServiceV2Server
	f *Server
}

var reSince = regexp.MustCompile(`timestamp\s*>=\s*"([^"]+)"`)

func matchEntry(filter string, e *loggingpb.LogEntry) bool {
	if sn := reServiceName.FindStringSubmatch(filter); sn != nil && e.GetResource().GetLabels()["service_name"] != sn[1] {
		return false
	}
	if m := reSince.FindStringSubmatch(filter); m != nil {
		t, err := time.Parse(time.RFC3339Nano, m[1])
		if err == nil && e.Timestamp.AsTime().Before(t) {
			return false
		}
	}
	return true
}

func (l *loggingService) WriteLogEntries(_ context.Context, req *loggingpb.WriteLogEntriesRequest) (*loggingpb.WriteLogEntriesResponse, error) {
	f := l.f
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, e := range req.Entries {
		e = proto.Clone(e).(*loggingpb.LogEntry)
		if e.Timestamp == nil {
			e.Timestamp = timestamppb.Now()
		}
		if e.InsertId == "" {
			e.InsertId = randHex(8)
		}
		f.logs = append(f.logs, e)
	}
	close(f.logCond)
	f.logCond = make(chan struct{})
	return &loggingpb.WriteLogEntriesResponse{}, nil
}

// ListLogEntries supports the filter terms the provider writes
// (service_name, timestamp >=), order_by "timestamp asc|desc" and
// page_size/page_token.
func (l *loggingService) ListLogEntries(_ context.Context, req *loggingpb.ListLogEntriesRequest) (*loggingpb.ListLogEntriesResponse, error) {
	f := l.f
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.enter("ListLogEntries"); err != nil {
		return nil, err
	}
	if len(req.ResourceNames) == 0 {
		return nil, status.Error(codes.InvalidArgument, "resource_names is required")
	}
	// ListLogEntriesRequest.page_size: "Default is 50. If the value is
	// negative or exceeds 1000, the request is rejected."
	if req.PageSize < 0 || req.PageSize > 1000 {
		return nil, status.Errorf(codes.InvalidArgument, "page_size %d: must be 0 to 1000", req.PageSize)
	}
	now := time.Now()
	for len(f.logReads) > 0 && now.Sub(f.logReads[0]) >= time.Minute {
		f.logReads = f.logReads[1:]
	}
	if f.LogReadQuota > 0 && len(f.logReads) >= f.LogReadQuota {
		return nil, status.Errorf(codes.ResourceExhausted, "Quota exceeded for quota metric 'Read requests' and limit 'Read requests per minute' of service 'logging.googleapis.com' (quota_limit_value %d)", f.LogReadQuota)
	}
	f.logReads = append(f.logReads, now)
	var all []*loggingpb.LogEntry
	for _, e := range f.logs {
		if matchEntry(req.Filter, e) {
			all = append(all, e)
		}
	}
	switch req.OrderBy {
	case "", "timestamp asc":
		sort.SliceStable(all, func(i, j int) bool { return all[i].Timestamp.AsTime().Before(all[j].Timestamp.AsTime()) })
	case "timestamp desc":
		sort.SliceStable(all, func(i, j int) bool { return all[i].Timestamp.AsTime().After(all[j].Timestamp.AsTime()) })
	default:
		return nil, status.Errorf(codes.InvalidArgument, "order_by %q", req.OrderBy)
	}
	off := 0
	if req.PageToken != "" {
		var err error
		if off, err = strconv.Atoi(req.PageToken); err != nil {
			return nil, status.Error(codes.InvalidArgument, "bad page_token")
		}
	}
	size := int(req.PageSize)
	if size == 0 {
		size = 50
	}
	out := &loggingpb.ListLogEntriesResponse{}
	end := min(off+size, len(all))
	if off < len(all) {
		for _, e := range all[off:end] {
			out.Entries = append(out.Entries, proto.Clone(e).(*loggingpb.LogEntry))
		}
	}
	if end < len(all) {
		out.NextPageToken = strconv.Itoa(end)
	}
	return out, nil
}

// TailLogEntries streams entries written after the first request arrives
// that match its filter, until the client goes away.
func (l *loggingService) TailLogEntries(stream loggingpb.LoggingServiceV2_TailLogEntriesServer) error {
	f := l.f
	req, err := stream.Recv()
	if err != nil {
		return err
	}
	if err := f.checkRequest("/google.logging.v2.LoggingServiceV2/TailLogEntries", req); err != nil {
		return err
	}
	if err := f.checkPermissions(req); err != nil {
		return err
	}
	f.mu.Lock()
	if err := f.enter("TailLogEntries"); err != nil {
		f.mu.Unlock()
		return err
	}
	if f.MaxTailSessions > 0 && f.tails >= f.MaxTailSessions {
		f.mu.Unlock()
		return status.Errorf(codes.ResourceExhausted, "Quota exceeded: at most %d open live-tailing sessions per project", f.MaxTailSessions)
	}
	f.tails++
	defer func() {
		f.mu.Lock()
		f.tails--
		f.mu.Unlock()
	}()
	before := f.BeforeTail
	f.mu.Unlock()
	if before != nil {
		before()
	}
	f.mu.Lock()
	next := len(f.logs)
	gen := f.tailGen
	f.mu.Unlock()
	for {
		f.mu.Lock()
		if f.tailGen != gen {
			err := f.tailErr
			f.mu.Unlock()
			return err
		}
		var batch []*loggingpb.LogEntry
		for _, e := range f.logs[next:] {
			if matchEntry(req.Filter, e) {
				batch = append(batch, proto.Clone(e).(*loggingpb.LogEntry))
			}
		}
		next = len(f.logs)
		wake := f.logCond
		resp := &loggingpb.TailLogEntriesResponse{Entries: batch}
		if f.SuppressEvery && len(batch) > 0 {
			// A tail over its rate: entries and, in the same response,
			// how many were left out (TailLogEntriesResponse: "entries"
			// and "suppression_info" are both set when some entries were
			// suppressed, reason RATE_LIMIT: "entries being received in
			// excess of rate limits").
			resp.SuppressionInfo = []*loggingpb.TailLogEntriesResponse_SuppressionInfo{{
				Reason: loggingpb.TailLogEntriesResponse_SuppressionInfo_RATE_LIMIT, SuppressedCount: 1}}
		}
		if f.suppress && len(batch) > 0 {
			f.suppress = false
			resp = &loggingpb.TailLogEntriesResponse{SuppressionInfo: []*loggingpb.TailLogEntriesResponse_SuppressionInfo{{
				Reason: loggingpb.TailLogEntriesResponse_SuppressionInfo_RATE_LIMIT, SuppressedCount: int32(len(batch))}}}
		}
		f.mu.Unlock()
		if len(batch) > 0 {
			if err := stream.Send(resp); err != nil {
				return err
			}
		}
		select {
		case <-stream.Context().Done():
			return nil
		case <-wake:
		}
	}
}
