package fakegcp

import (
	"context"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"cloud.google.com/go/longrunning/autogen/longrunningpb"
	"cloud.google.com/go/run/apiv2/runpb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

type pendingOp struct {
	polls int
	final *longrunningpb.Operation
}

type service struct {
	svc       *runpb.Service
	revs      map[string]*revision // short name → revision
	order     []string
	pending   string // revision reconciling
	steps     int
	instances []string // ids of running instances
	instRev   string
	servedGen int64 // generation of the last successful reconciliation
}

type revision struct {
	rev *runpb.Revision
}

// BadImage makes revisions with image fail with message.
func (f *Server) BadImage(image, message string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.badImages[image] = message
}

// FailOperation makes the next Create/UpdateService operation complete
// with st as its error.
func (f *Server) FailOperation(st *status.Status) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failOp = st
}

// Observation is what the fake runs for a service.
type Observation struct {
	Running     int
	Revision    string   // serving revision, short name
	InstanceIDs []string // the fake's own instance ids
}

// Observe reports the instances the fake runs for service (short name).
func (f *Server) Observe(name string) Observation {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, s := range f.services {
		if shortName(s.svc.Name) == name {
			return Observation{Running: len(s.instances), Revision: s.instRev, InstanceIDs: append([]string(nil), s.instances...)}
		}
	}
	return Observation{}
}

// Service returns a copy of the stored service resource, or nil.
func (f *Server) Service(name string) *runpb.Service {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, s := range f.services {
		if shortName(s.svc.Name) == name {
			return proto.Clone(s.svc).(*runpb.Service)
		}
	}
	return nil
}

// settleLocked moves a reconciling service one step; f.mu must be held.
func (f *Server) settleLocked(s *service) {
	if s.pending == "" {
		f.runInstancesLocked(s)
		return
	}
	if s.steps > 0 {
		s.steps--
		return
	}
	r := s.revs[s.pending]
	s.pending = ""
	now := timestamppb.Now()
	img := r.rev.Containers[0].Image
	msg, bad := f.badImages[img]
	reason := runpb.Condition_CONTAINER_MISSING
	if !bad {
		if denied := f.secretDeniedLocked(r.rev); denied != "" {
			msg, bad, reason = denied, true, runpb.Condition_COMMON_REASON_UNDEFINED
		}
	}
	if bad {
		fc := &runpb.Condition{Type: "Ready", State: runpb.Condition_CONDITION_FAILED, LastTransitionTime: now,
			Message: msg, Reasons: &runpb.Condition_Reason{Reason: reason}}
		r.rev.Conditions = []*runpb.Condition{fc}
		r.rev.Reconciling = false
		s.svc.TerminalCondition = &runpb.Condition{Type: "Ready", State: runpb.Condition_CONDITION_FAILED, LastTransitionTime: now,
			Message: fmt.Sprintf("Revision '%s' is not ready and cannot serve traffic. %s", r.rev.Name[strings.LastIndex(r.rev.Name, "/")+1:], msg),
			Reasons: &runpb.Condition_Reason{Reason: reason}}
	} else {
		r.rev.Conditions = []*runpb.Condition{{Type: "Ready", State: runpb.Condition_CONDITION_SUCCEEDED, LastTransitionTime: now}}
		r.rev.Reconciling = false
		s.svc.LatestReadyRevision = r.rev.Name
		s.svc.TerminalCondition = &runpb.Condition{Type: "Ready", State: runpb.Condition_CONDITION_SUCCEEDED, LastTransitionTime: now}
		s.svc.TrafficStatuses = []*runpb.TrafficTargetStatus{{Type: runpb.TrafficTargetAllocationType_TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST, Percent: 100, Revision: shortName(r.rev.Name)}}
	}
	s.svc.Reconciling = false
	// service.proto, Service.reconciling: "If reconciliation failed,
	// traffic_statuses, observed_generation, and latest_ready_revision
	// will have the state of the last serving revision, or empty for
	// newly created Services."
	if bad {
		s.svc.ObservedGeneration = s.servedGen
	} else {
		s.svc.ObservedGeneration, s.servedGen = s.svc.Generation, s.svc.Generation
	}
	f.runInstancesLocked(s)
}

// runInstancesLocked runs manualInstanceCount instances of the latest
// ready revision, replacing all of them when the revision changed.
func (f *Server) runInstancesLocked(s *service) {
	rev := shortName(s.svc.LatestReadyRevision)
	want := 0
	if rev != "" {
		sc := s.svc.GetScaling()
		if sc.GetScalingMode() == runpb.ServiceScaling_MANUAL && sc.ManualInstanceCount != nil {
			want = int(sc.GetManualInstanceCount())
		} else {
			want = int(sc.GetMinInstanceCount())
		}
	}
	if rev != s.instRev {
		s.instances, s.instRev = nil, rev
	}
	for len(s.instances) > want {
		s.instances = s.instances[:len(s.instances)-1]
	}
	for len(s.instances) < want {
		id := "00" + randHex(12)
		s.instances = append(s.instances, id)
		if f.StartupLine != "" {
			f.logLocked(s, id, f.StartupLine)
		}
	}
}

var (
	reName = regexp.MustCompile(`^projects/[^/]+/locations/[^/]+/services/([a-z]([-a-z0-9]{0,47}[a-z0-9])?)$`)
)

// applyLocked stores svc as the new desired state of s.
func (f *Server) applyLocked(s *service, in *runpb.Service) {
	prev := s.svc
	in = proto.Clone(in).(*runpb.Service)
	now := timestamppb.Now()
	in.Generation = 1
	in.CreateTime = now
	if prev != nil {
		in.Generation = prev.Generation + 1
		in.CreateTime = prev.CreateTime
		in.Uid = prev.Uid
		in.LatestCreatedRevision, in.LatestReadyRevision = prev.LatestCreatedRevision, prev.LatestReadyRevision
		in.TrafficStatuses, in.TerminalCondition = prev.TrafficStatuses, prev.TerminalCondition
		in.ObservedGeneration = prev.ObservedGeneration
	} else {
		in.Uid = randHex(16)
	}
	in.UpdateTime = now
	in.Etag = strconv.Quote(randHex(6))
	if len(in.Traffic) == 0 {
		in.Traffic = []*runpb.TrafficTarget{{Type: runpb.TrafficTargetAllocationType_TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST, Percent: 100}}
	}
	fillDefaults(in.Template)
	templateChanged := prev == nil || !proto.Equal(prev.Template, in.Template)
	if in.Template != nil {
		in.Template.Revision = ""
	}
	s.svc = in
	if !templateChanged {
		s.svc.ObservedGeneration, s.servedGen = s.svc.Generation, s.svc.Generation
		f.runInstancesLocked(s)
		return
	}
	short := fmt.Sprintf("%s-%05d-%s", shortName(in.Name), len(s.order)+1, randHex(2)[:3])
	revName := strings.Replace(in.Name, "/services/"+shortName(in.Name), "/services/"+shortName(in.Name)+"/revisions/"+short, 1)
	tmpl := in.GetTemplate()
	rev := &runpb.Revision{Name: revName, Uid: randHex(16), Generation: 1, Labels: tmpl.GetLabels(), Annotations: tmpl.GetAnnotations(), ServiceAccount: tmpl.GetServiceAccount(),
		CreateTime: now, Service: shortName(in.Name), Containers: tmpl.GetContainers(), Scaling: tmpl.GetScaling(), Reconciling: true,
		Conditions: []*runpb.Condition{{Type: "Ready", State: runpb.Condition_CONDITION_RECONCILING, LastTransitionTime: now}}}
	s.revs[short] = &revision{rev: rev}
	s.order = append(s.order, short)
	s.pending, s.steps = short, f.Steps
	in.LatestCreatedRevision = revName
	in.Reconciling = true
	in.TerminalCondition = &runpb.Condition{Type: "Ready", State: runpb.Condition_CONDITION_RECONCILING, LastTransitionTime: now,
		Message: "Deploying revision " + short}
}

// fillDefaults fills in what Cloud Run fills in on a stored template:
// the default port name http1 and CPU limits in millicores ("1" →
// "1000m").
func fillDefaults(t *runpb.RevisionTemplate) {
	for _, c := range t.GetContainers() {
		for _, p := range c.Ports {
			if p.Name == "" {
				p.Name = "http1"
			}
		}
		if cpu, ok := c.GetResources().GetLimits()["cpu"]; ok && !strings.HasSuffix(cpu, "m") {
			if n, err := strconv.ParseFloat(cpu, 64); err == nil {
				c.Resources.Limits["cpu"] = strconv.Itoa(int(n*1000)) + "m"
			}
		}
	}
}

// failBadImageLocked settles s at once when its pending revision has a
// bad image and BadImageFailsOperation is set, and makes the operation
// about to be created fail.
func (f *Server) failBadImageLocked(s *service) {
	if !f.BadImageFailsOperation || s.pending == "" {
		return
	}
	if _, bad := f.badImages[s.revs[s.pending].rev.Containers[0].Image]; !bad {
		return
	}
	s.steps = 0
	f.settleLocked(s)
	f.failOp = status.New(codes.FailedPrecondition, s.svc.TerminalCondition.GetMessage())
}

func (f *Server) operationLocked(method string, svc *runpb.Service) (*longrunningpb.Operation, error) {
	f.nextOp++
	op := &longrunningpb.Operation{Name: fmt.Sprintf("%s/operations/op-%d", svc.Name[:strings.Index(svc.Name, "/services/")], f.nextOp), Done: true}
	if f.failOp != nil {
		op.Result = &longrunningpb.Operation_Error{Error: f.failOp.Proto()}
		f.failOp = nil
	} else {
		resp, err := anypb.New(svc)
		if err != nil {
			return nil, err
		}
		op.Result = &longrunningpb.Operation_Response{Response: resp}
	}
	meta, _ := anypb.New(svc)
	op.Metadata = meta
	f.ops[op.Name] = op
	if f.OperationPolls > 0 {
		if f.opsPending == nil {
			f.opsPending = map[string]*pendingOp{}
		}
		f.opsPending[op.Name] = &pendingOp{polls: f.OperationPolls, final: op}
		running := &longrunningpb.Operation{Name: op.Name, Metadata: meta}
		f.ops[op.Name] = running
		return proto.Clone(running).(*longrunningpb.Operation), nil
	}
	return op, nil
}

type runServices struct {
	runpb.UnimplementedServicesServer
	f *Server
}

func (r *runServices) CreateService(_ context.Context, req *runpb.CreateServiceRequest) (*longrunningpb.Operation, error) {
	f := r.f
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.enter("CreateService"); err != nil {
		return nil, err
	}
	name := req.Parent + "/services/" + req.ServiceId
	if !reName.MatchString(name) {
		return nil, status.Errorf(codes.InvalidArgument, "service id %q: must be a DNS label of at most 49 characters", req.ServiceId)
	}
	if _, dup := f.services[name]; dup {
		return nil, status.Errorf(codes.AlreadyExists, "Resource '%s' already exists.", req.ServiceId)
	}
	if req.Service == nil {
		return nil, status.Error(codes.InvalidArgument, "service is required")
	}
	// Documented: in CreateServiceRequest, service.name is ignored and
	// composed from parent and service_id.
	if err := validateService(req.Service); err != nil {
		return nil, err
	}
	if f.failOp != nil {
		// The operation fails; the service is not created.
		svc := proto.Clone(req.Service).(*runpb.Service)
		svc.Name = name
		return f.operationLocked("CreateService", svc)
	}
	s := &service{revs: map[string]*revision{}}
	in := proto.Clone(req.Service).(*runpb.Service)
	in.Name = name
	f.applyLocked(s, in)
	f.services[name] = s
	f.failBadImageLocked(s)
	return f.operationLocked("CreateService", s.svc)
}

// Google Cloud labels (cloud.google.com/run/docs/configuring/labels: "Only
// valid Google Cloud labels can be used on Cloud Run"; the rules on
// cloud.google.com/resource-manager/docs/labels-overview: keys start with
// a lowercase letter; keys and values hold lowercase letters, digits, '_'
// and '-', at most 63 characters).
var (
	reLabelKey   = regexp.MustCompile(`^[a-z][a-z0-9_-]{0,62}$`)
	reLabelValue = regexp.MustCompile(`^[a-z0-9_-]{0,63}$`)
)

// maxLabels is how many labels a resource holds ("Each resource can have
// multiple labels, up to a maximum of 64", labels-overview).
const maxLabels = 64

func validateLabels(path string, labels map[string]string) error {
	if len(labels) > maxLabels {
		return status.Errorf(codes.InvalidArgument, "%s: %d labels; a resource holds at most %d", path, len(labels), maxLabels)
	}
	for k, v := range labels {
		if !reLabelKey.MatchString(k) || !reLabelValue.MatchString(v) {
			return status.Errorf(codes.InvalidArgument, "%s: %q=%q is not a valid Google Cloud label (keys [a-z][a-z0-9_-]{0,62}, values [a-z0-9_-]{0,63})", path, k, v)
		}
	}
	return nil
}

// validateProbe applies the limits of google/cloud/run/v2/k8s.min.proto,
// message Probe: initial_delay_seconds and period_seconds at most 240 for
// a startup probe and 3600 for a liveness probe; timeout_seconds 1..3600
// and not above period_seconds ("Must be greater or equal than
// timeout_seconds"); defaults period 10, timeout 1. Liveness probes are
// HTTP or gRPC only ("You can configure HTTP, TCP, and gRPC startup
// probes, along with HTTP and gRPC liveness probes",
// cloud.google.com/run/docs/configuring/healthchecks).
func validateProbe(path string, p *runpb.Probe, startup bool) error {
	if p == nil {
		return nil
	}
	maxi := int32(3600)
	if startup {
		maxi = 240
	}
	if !startup && p.GetTcpSocket() != nil {
		return status.Errorf(codes.InvalidArgument, "%s.tcpSocket: liveness probes support HTTP and gRPC only", path)
	}
	period, timeout := p.PeriodSeconds, p.TimeoutSeconds
	if period == 0 {
		period = 10
	}
	if timeout == 0 {
		timeout = 1
	}
	switch {
	case p.InitialDelaySeconds < 0 || p.InitialDelaySeconds > maxi:
		return status.Errorf(codes.InvalidArgument, "%s.initialDelaySeconds: must be between 0 and %d", path, maxi)
	case period < 1 || period > maxi:
		return status.Errorf(codes.InvalidArgument, "%s.periodSeconds: must be between 1 and %d", path, maxi)
	case timeout < 1 || timeout > 3600:
		return status.Errorf(codes.InvalidArgument, "%s.timeoutSeconds: must be between 1 and 3600", path)
	case timeout > period:
		return status.Errorf(codes.InvalidArgument, "%s.timeoutSeconds: must not exceed periodSeconds", path)
	case p.FailureThreshold < 0:
		return status.Errorf(codes.InvalidArgument, "%s.failureThreshold: must be at least 1", path)
	}
	return nil
}

func validateService(svc *runpb.Service) error {
	if err := validateLabels("service.labels", svc.Labels); err != nil {
		return err
	}
	if err := validateLabels("service.template.labels", svc.GetTemplate().GetLabels()); err != nil {
		return err
	}
	cs := svc.GetTemplate().GetContainers()
	if len(cs) == 0 {
		return status.Error(codes.InvalidArgument, "template.containers: at least one container is required")
	}
	for _, c := range cs {
		if err := validateProbe("template.containers.startupProbe", c.StartupProbe, true); err != nil {
			return err
		}
		if err := validateProbe("template.containers.livenessProbe", c.LivenessProbe, false); err != nil {
			return err
		}
		if c.Image == "" {
			return status.Error(codes.InvalidArgument, "template.containers.image: required")
		}
		if len(c.Ports) > 1 {
			return status.Error(codes.InvalidArgument, "template.containers.ports: at most one port")
		}
		for _, p := range c.Ports {
			if p.Name != "" && p.Name != "http1" && p.Name != "h2c" {
				return status.Errorf(codes.InvalidArgument, "template.containers.ports.name %q: must be http1 or h2c", p.Name)
			}
		}
	}
	return nil
}

func (r *runServices) GetService(_ context.Context, req *runpb.GetServiceRequest) (*runpb.Service, error) {
	f := r.f
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.enter("GetService"); err != nil {
		return nil, err
	}
	s, ok := f.services[req.Name]
	if !ok {
		return nil, status.Errorf(codes.NotFound, "Resource '%s' of kind 'SERVICE' in region '%s' in project '%s' does not exist.",
			shortName(req.Name), regionOf(req.Name), projectOf(req.Name))
	}
	f.settleLocked(s)
	return proto.Clone(s.svc).(*runpb.Service), nil
}

func regionOf(name string) string {
	p := strings.Split(name, "/")
	if len(p) > 3 {
		return p[3]
	}
	return ""
}

func projectOf(name string) string {
	p := strings.Split(name, "/")
	if len(p) > 1 {
		return p[1]
	}
	return ""
}

func (r *runServices) ListServices(_ context.Context, req *runpb.ListServicesRequest) (*runpb.ListServicesResponse, error) {
	f := r.f
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.enter("ListServices"); err != nil {
		return nil, err
	}
	out := &runpb.ListServicesResponse{}
	var names []string
	for n := range f.services {
		if strings.HasPrefix(n, req.Parent+"/services/") {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	for _, n := range names {
		out.Services = append(out.Services, proto.Clone(f.services[n].svc).(*runpb.Service))
	}
	return out, nil
}

func (r *runServices) UpdateService(_ context.Context, req *runpb.UpdateServiceRequest) (*longrunningpb.Operation, error) {
	f := r.f
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.enter("UpdateService"); err != nil {
		return nil, err
	}
	s, ok := f.services[req.GetService().GetName()]
	if !ok {
		return nil, status.Errorf(codes.NotFound, "Resource '%s' of kind 'SERVICE' does not exist.", shortName(req.GetService().GetName()))
	}
	// Service.etag (OPTIONAL in cloud.google.com/go/run v1.25.0's
	// descriptor): "A system-generated fingerprint for this version of
	// the resource. May be used to detect modification conflict during
	// updates." The fake enforces it; whether Cloud Run does is a known
	// unknown (see the gcp package doc).
	if req.Service.Etag != "" && req.Service.Etag != s.svc.Etag {
		return nil, status.Error(codes.Aborted, "etag mismatch: the service changed since it was read")
	}
	if err := checkImmutable(req.Service.ProtoReflect(), s.svc.ProtoReflect(), "service"); err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	if err := validateService(req.Service); err != nil {
		return nil, err
	}
	if f.failOp != nil {
		return f.operationLocked("UpdateService", s.svc)
	}
	f.applyLocked(s, req.Service)
	f.failBadImageLocked(s)
	return f.operationLocked("UpdateService", s.svc)
}

func (r *runServices) DeleteService(_ context.Context, req *runpb.DeleteServiceRequest) (*longrunningpb.Operation, error) {
	f := r.f
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.enter("DeleteService"); err != nil {
		return nil, err
	}
	s, ok := f.services[req.Name]
	if !ok {
		return nil, status.Errorf(codes.NotFound, "Resource '%s' of kind 'SERVICE' does not exist.", shortName(req.Name))
	}
	delete(f.services, req.Name)
	return f.operationLocked("DeleteService", s.svc)
}

type runRevisions struct {
	runpb.UnimplementedRevisionsServer
	f *Server
}

func (r *runRevisions) GetRevision(_ context.Context, req *runpb.GetRevisionRequest) (*runpb.Revision, error) {
	f := r.f
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.enter("GetRevision"); err != nil {
		return nil, err
	}
	for _, s := range f.services {
		if rv, ok := s.revs[shortName(req.Name)]; ok && rv.rev.Name == req.Name {
			return proto.Clone(rv.rev).(*runpb.Revision), nil
		}
	}
	return nil, status.Errorf(codes.NotFound, "Resource '%s' of kind 'REVISION' does not exist.", shortName(req.Name))
}

func (r *runRevisions) ListRevisions(_ context.Context, req *runpb.ListRevisionsRequest) (*runpb.ListRevisionsResponse, error) {
	f := r.f
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.enter("ListRevisions"); err != nil {
		return nil, err
	}
	s, ok := f.services[req.Parent]
	if !ok {
		return nil, status.Errorf(codes.NotFound, "Resource '%s' of kind 'SERVICE' does not exist.", shortName(req.Parent))
	}
	out := &runpb.ListRevisionsResponse{}
	for i := len(s.order) - 1; i >= 0; i-- { // newest first
		out.Revisions = append(out.Revisions, proto.Clone(s.revs[s.order[i]].rev).(*runpb.Revision))
	}
	return out, nil
}

type operations struct {
	longrunningpb.UnimplementedOperationsServer
	f *Server
}

func (o *operations) GetOperation(_ context.Context, req *longrunningpb.GetOperationRequest) (*longrunningpb.Operation, error) {
	f := o.f
	f.mu.Lock()
	defer f.mu.Unlock()
	op, ok := f.ops[req.Name]
	if !ok {
		return nil, status.Errorf(codes.NotFound, "operation %s not found", req.Name)
	}
	f.calls["GetOperation"]++
	if p := f.opsPending[req.Name]; p != nil {
		if p.polls--; p.polls <= 0 {
			f.ops[req.Name] = p.final
			op = p.final
			delete(f.opsPending, req.Name)
		}
	}
	return proto.Clone(op).(*longrunningpb.Operation), nil
}

func (o *operations) WaitOperation(ctx context.Context, req *longrunningpb.WaitOperationRequest) (*longrunningpb.Operation, error) {
	return o.GetOperation(ctx, &longrunningpb.GetOperationRequest{Name: req.Name})
}
