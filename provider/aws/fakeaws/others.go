package fakeaws

import (
	"fmt"
	"maps"
	"math"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/aws/smithy-go/encoding/cbor"
)

type param struct {
	name, typ, value string
	version          int
	modified         time.Time
}

type logEvent struct {
	stream   string
	ts       int64
	ingested int64
	id       string
	message  string
}

func (f *Fake) paramARN(name string) string {
	return f.arn("ssm", "parameter/"+strings.TrimPrefix(name, "/"))
}

// paramByRef finds a parameter by name or ARN.
func (f *Fake) paramByRef(ref string) *param {
	if p := f.params[ref]; p != nil {
		return p
	}
	if _, rest, ok := strings.Cut(ref, ":parameter/"); ok && strings.HasPrefix(ref, "arn:") {
		if p := f.params["/"+rest]; p != nil {
			return p
		}
		return f.params[rest]
	}
	return nil
}

func (f *Fake) paramJSON(p *param) map[string]any {
	return map[string]any{"Name": p.name, "Type": p.typ, "Value": p.value, "Version": p.version,
		"ARN": f.paramARN(p.name), "LastModifiedDate": epoch(p.modified), "DataType": "text"}
}

func (f *Fake) ssm(op string, in map[string]any) (any, *apiError) {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch op {
	case "PutParameter":
		name, typ := str(in, "Name"), str(in, "Type")
		if name == "" {
			return nil, errf(400, "ValidationException", "1 validation error detected: Value null at 'name' failed to satisfy constraint: Member must not be null")
		}
		if _, ok := in["Value"]; !ok {
			return nil, errf(400, "ValidationException", "1 validation error detected: Value null at 'value' failed to satisfy constraint: Member must not be null")
		}
		// "Standard parameters have a value limit of 4 KB. Advanced
		// parameters have a value limit of 8 KB" (PutParameterInput.Value,
		// AWS Systems Manager API reference); without Tier the account's
		// default tier, Standard, applies.
		limit := 4096
		if t := str(in, "Tier"); t == "Advanced" || t == "Intelligent-Tiering" {
			limit = 8192
		}
		if n := len(str(in, "Value")); n > limit {
			return nil, errf(400, "ValidationException", "1 validation error detected: Value at 'value' failed to satisfy constraint: Member must have length less than or equal to %d", limit)
		}
		p := f.params[name]
		if p != nil && !boolean(in, "Overwrite") {
			return nil, errf(400, "ParameterAlreadyExists", "The parameter already exists. To overwrite this value, set the overwrite option in the request to true.")
		}
		if p == nil {
			if typ == "" {
				typ = "String"
			}
			p = &param{name: name}
			f.params[name] = p
		}
		if typ != "" {
			p.typ = typ
		}
		if p.typ != "String" && p.typ != "StringList" && p.typ != "SecureString" {
			return nil, errf(400, "ValidationException", "Type %q is not valid.", p.typ)
		}
		p.value, p.modified = str(in, "Value"), f.now()
		p.version++
		return map[string]any{"Version": p.version, "Tier": "Standard"}, nil
	case "GetParameter":
		p := f.params[str(in, "Name")]
		if p == nil {
			return nil, errf(400, "ParameterNotFound", "")
		}
		out := f.paramJSON(p)
		if p.typ == "SecureString" && !boolean(in, "WithDecryption") {
			out["Value"] = "AQICAHh-fake-ciphertext"
		}
		return map[string]any{"Parameter": out}, nil
	case "GetParametersByPath":
		path := strings.TrimSuffix(str(in, "Path"), "/") + "/"
		var names []string
		for n := range f.params {
			if rest, ok := strings.CutPrefix(n, path); ok && (boolean(in, "Recursive") || !strings.Contains(rest, "/")) {
				names = append(names, n)
			}
		}
		sort.Strings(names)
		start := 0
		if tok := str(in, "NextToken"); tok != "" {
			start, _ = strconv.Atoi(tok)
		}
		max := 10
		if m, ok := num(in, "MaxResults"); ok && m > 0 {
			max = int(m)
		}
		out := map[string]any{}
		var ps []any
		for i := start; i < len(names) && i < start+max; i++ {
			j := f.paramJSON(f.params[names[i]])
			if f.params[names[i]].typ == "SecureString" && !boolean(in, "WithDecryption") {
				j["Value"] = "AQICAHh-fake-ciphertext"
			}
			ps = append(ps, j)
		}
		if start+max < len(names) {
			out["NextToken"] = strconv.Itoa(start + max)
		}
		out["Parameters"] = orEmpty(ps)
		return out, nil
	case "DescribeParameters":
		return f.describeParameters(in) // refs.go
	case "DeleteParameters":
		var del, bad []string
		for _, n := range strs(in, "Names") {
			if f.params[n] == nil {
				bad = append(bad, n)
				continue
			}
			delete(f.params, n)
			del = append(del, n)
		}
		return map[string]any{"DeletedParameters": orEmptyS(del), "InvalidParameters": orEmptyS(bad)}, nil
	}
	return nil, errf(400, "UnknownOperationException", "fakeaws: SSM operation %s is not implemented", op)
}

// Parameter returns an SSM parameter's value and type from the fake's state.
func (f *Fake) Parameter(name string) (value, typ string, ok bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	p := f.params[name]
	if p == nil {
		return "", "", false
	}
	return p.value, p.typ, true
}

// appendLog adds an event (f.mu held). Timestamps are strictly increasing
// per fake so that tests of cursors have ties only when they ask for them.
func (f *Fake) appendLog(group, stream, msg string) {
	now := f.now().UnixMilli()
	f.seq++
	f.logs[group] = append(f.logs[group], &logEvent{stream: stream, ts: now, ingested: now, message: msg,
		id: fmt.Sprintf("%056d", f.seq)})
}

// SetClock replaces the fake's clock (creation times of services and
// tasks, ingestion times); nil restores time.Now.
func (f *Fake) SetClock(now func() time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if now == nil {
		now = time.Now
	}
	f.now = now
}

// FilteredEvents is how many events FilterLogEvents has returned in all.
func (f *Fake) FilteredEvents() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.filtered
}

// PutLogEvent adds an event with an explicit timestamp (ms), for cursor tests.
func (f *Fake) PutLogEvent(group, stream string, ts int64, msg string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.seq++
	f.logs[group] = append(f.logs[group], &logEvent{stream: stream, ts: ts, ingested: f.now().UnixMilli(), message: msg,
		id: fmt.Sprintf("%056d", f.seq)})
}

func (f *Fake) cwlogs(op string, in map[string]any) (any, *apiError) {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch op {
	case "FilterLogEvents":
		g := str(in, "logGroupName")
		evs, ok := f.logs[g]
		if !ok {
			return nil, errf(400, "ResourceNotFoundException", "The specified log group does not exist.")
		}
		prefix := str(in, "logStreamNamePrefix")
		start, hasStart := num(in, "startTime")
		end, hasEnd := num(in, "endTime")
		var sel []*logEvent
		searchable := f.now().Add(-f.opts.SearchDelay).UnixMilli()
		for _, e := range evs {
			if !strings.HasPrefix(e.stream, prefix) || (hasStart && float64(e.ts) < start) || (hasEnd && float64(e.ts) > end) {
				continue
			}
			if f.opts.SearchDelay > 0 && e.ingested > searchable {
				continue
			}
			sel = append(sel, e)
		}
		sort.SliceStable(sel, func(i, j int) bool { return sel[i].ts < sel[j].ts })
		off, empty := 0, 0
		if tok := str(in, "nextToken"); tok != "" {
			rest := strings.TrimPrefix(tok, "fake-")
			if e, o, ok := strings.Cut(rest, "-"); ok {
				empty, _ = strconv.Atoi(e)
				rest = o
			}
			off, _ = strconv.Atoi(rest)
		}
		out := map[string]any{}
		if empty < f.opts.EmptyPages {
			out["events"] = []any{}
			out["searchedLogStreams"] = []any{}
			out["nextToken"] = fmt.Sprintf("fake-%d-%d", empty+1, off)
			return out, nil
		}
		// At most 10,000 events a page, the default and the maximum
		// (FilterLogEventsInput.Limit, CloudWatch Logs API reference).
		limit := 10000
		if l, ok := num(in, "limit"); ok && l > 0 {
			if l > 10000 {
				return nil, errf(400, "InvalidParameterException", "1 validation error detected: Value at 'limit' failed to satisfy constraint: Member must have value less than or equal to 10000")
			}
			limit = int(l)
		}
		var res []any
		for i := off; i < len(sel) && i < off+limit; i++ {
			e := sel[i]
			res = append(res, map[string]any{"logStreamName": e.stream, "timestamp": e.ts, "message": e.message,
				"ingestionTime": e.ingested, "eventId": e.id})
		}
		if off+limit < len(sel) {
			out["nextToken"] = fmt.Sprintf("fake-%d-%d", empty, off+limit)
		}
		f.filtered += len(res)
		out["events"] = orEmpty(res)
		out["searchedLogStreams"] = []any{}
		return out, nil
	case "DescribeLogGroups":
		prefix := str(in, "logGroupNamePrefix")
		var groups []any
		for _, g := range slices.Sorted(maps.Keys(f.logs)) {
			if strings.HasPrefix(g, prefix) {
				arn := fmt.Sprintf("arn:aws:logs:%s:%s:log-group:%s", f.opts.Region, f.opts.Account, g)
				groups = append(groups, map[string]any{"logGroupName": g, "arn": arn + ":*", "logGroupArn": arn,
					"creationTime": f.now().UnixMilli(), "storedBytes": 0})
			}
		}
		return map[string]any{"logGroups": orEmpty(groups)}, nil
	case "CreateLogGroup":
		g := str(in, "logGroupName")
		if _, ok := f.logs[g]; ok {
			return nil, errf(400, "ResourceAlreadyExistsException", "The specified log group already exists")
		}
		f.logs[g] = nil
		return map[string]any{}, nil
	}
	return nil, errf(400, "UnknownOperationException", "fakeaws: Logs operation %s is not implemented", op)
}

// CloudWatch over RPC v2 CBOR.

func writeCBORError(w http.ResponseWriter, e *apiError) {
	w.Header().Set("Smithy-Protocol", "rpc-v2-cbor")
	w.Header().Set("Content-Type", "application/cbor")
	w.WriteHeader(e.status)
	_, _ = w.Write(cbor.Encode(cbor.Map{"__type": cbor.String("com.amazonaws.cloudwatch#" + e.code), "message": cbor.String(e.message)}))
}

func cborStr(m cbor.Map, k string) string { s, _ := m[k].(cbor.String); return string(s) }

func cborNum(v cbor.Value) float64 {
	switch n := v.(type) {
	case cbor.Uint:
		return float64(n)
	case cbor.NegInt:
		return -float64(n)
	case cbor.Float32:
		return float64(n)
	case cbor.Float64:
		return float64(n)
	case *cbor.Tag:
		return cborNum(n.Value)
	}
	return math.NaN()
}

func cborTime(v cbor.Value) time.Time {
	t, ok := v.(*cbor.Tag)
	if !ok || t.ID != 1 {
		return time.Time{}
	}
	s := cborNum(t.Value)
	return time.Unix(0, int64(s*1e9))
}

func (f *Fake) serveCloudWatch(w http.ResponseWriter, r *http.Request, op string, body []byte) {
	if r.Header.Get("Smithy-Protocol") != "rpc-v2-cbor" {
		writeCBORError(w, errf(400, "SerializationException", "missing Smithy-Protocol: rpc-v2-cbor"))
		return
	}
	if op != "GetMetricData" {
		writeCBORError(w, errf(400, "UnknownOperationException", "fakeaws: CloudWatch operation %s is not implemented", op))
		return
	}
	v, err := cbor.Decode(body)
	in, ok := v.(cbor.Map)
	if err != nil || !ok {
		writeCBORError(w, errf(400, "SerializationException", "body is not a CBOR map: %v", err))
		return
	}
	start, end := cborTime(in["StartTime"]), cborTime(in["EndTime"])
	if start.IsZero() || end.IsZero() || !start.Before(end) {
		writeCBORError(w, errf(400, "InvalidParameterValueException", "StartTime and EndTime (epoch-seconds tag 1) are required, StartTime before EndTime"))
		return
	}
	qs, _ := in["MetricDataQueries"].(cbor.List)
	var results cbor.List
	for _, q := range qs {
		qm, _ := q.(cbor.Map)
		ms, _ := qm["MetricStat"].(cbor.Map)
		m, _ := ms["Metric"].(cbor.Map)
		period := cborNum(ms["Period"])
		if math.IsNaN(period) || period < 1 {
			writeCBORError(w, errf(400, "InvalidParameterValueException", "MetricStat.Period must be >= 1"))
			return
		}
		dims := map[string]string{}
		dl, _ := m["Dimensions"].(cbor.List)
		for _, d := range dl {
			dm, _ := d.(cbor.Map)
			dims[cborStr(dm, "Name")] = cborStr(dm, "Value")
		}
		val, have := f.metric(cborStr(m, "Namespace"), cborStr(m, "MetricName"), dims)
		res := cbor.Map{"Id": qm["Id"], "Label": m["MetricName"], "StatusCode": cbor.String("Complete")}
		ts, vals := cbor.List{}, cbor.List{}
		if have {
			p := time.Duration(period) * time.Second
			at := end.Truncate(p)
			if at.Before(start) {
				at = start
			}
			ts = append(ts, &cbor.Tag{ID: 1, Value: cbor.Float64(float64(at.Unix()))})
			vals = append(vals, cbor.Float64(val))
		}
		res["Timestamps"], res["Values"] = ts, vals
		results = append(results, res)
	}
	if results == nil {
		results = cbor.List{}
	}
	w.Header().Set("Smithy-Protocol", "rpc-v2-cbor")
	w.Header().Set("Content-Type", "application/cbor")
	_, _ = w.Write(cbor.Encode(cbor.Map{"MetricDataResults": results, "Messages": cbor.List{}}))
}

// metric synthesises a datapoint from state: CPU 25%, memory 40% of the
// reservation while tasks run; RunningTaskCount from the tasks.
func (f *Fake) metric(ns, name string, dims map[string]string) (float64, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := f.svcs[dims["ClusterName"]+"/"+dims["ServiceName"]]
	if s == nil {
		return 0, false
	}
	running := 0
	for _, t := range f.serviceTasks(s, "") {
		if t.lastStatus == "RUNNING" {
			running++
		}
	}
	switch ns + "/" + name {
	case "AWS/ECS/CPUUtilization":
		return 25, running > 0
	case "AWS/ECS/MemoryUtilization":
		return 40, running > 0
	case "ECS/ContainerInsights/RunningTaskCount":
		return float64(running), true
	}
	return 0, false
}
