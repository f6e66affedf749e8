package fakegcp

import (
	"strings"
	"testing"

	"cloud.google.com/go/logging/apiv2/loggingpb"
	"cloud.google.com/go/monitoring/apiv3/v2/monitoringpb"
	"cloud.google.com/go/run/apiv2/runpb"
	"cloud.google.com/go/secretmanager/apiv1/secretmanagerpb"
	"google.golang.org/protobuf/proto"
)

// TestFieldBehaviorContract: the checks read google.api.field_behavior
// from the compiled descriptors: REQUIRED fields missing, OUTPUT_ONLY
// fields present and IMMUTABLE fields changed are refused, at any depth.
func TestFieldBehaviorContract(t *testing.T) {
	okSvc := &runpb.Service{Template: &runpb.RevisionTemplate{Containers: []*runpb.Container{{Image: "img"}}}}
	for _, c := range []struct {
		name string
		req  proto.Message
		want string // "" = accepted
	}{
		{"create ok", &runpb.CreateServiceRequest{Parent: "projects/p/locations/l", ServiceId: "s", Service: okSvc}, ""},
		{"required parent", &runpb.CreateServiceRequest{ServiceId: "s", Service: okSvc}, "parent is required"},
		{"required nested image", &runpb.CreateServiceRequest{Parent: "p", ServiceId: "s",
			Service: &runpb.Service{Template: &runpb.RevisionTemplate{Containers: []*runpb.Container{{Name: "app"}}}}}, "service.template.containers[0].image is required"},
		{"required env name", &runpb.UpdateServiceRequest{Service: &runpb.Service{Template: &runpb.RevisionTemplate{Containers: []*runpb.Container{{Image: "i", Env: []*runpb.EnvVar{{}}}}}}}, "env[0].name is required"},
		{"output only uid", &runpb.UpdateServiceRequest{Service: &runpb.Service{Uid: "u", Template: okSvc.Template}}, "service.uid is output only"},
		{"output only nested", &runpb.UpdateServiceRequest{Service: &runpb.Service{Template: okSvc.Template, TerminalCondition: &runpb.Condition{Type: "Ready"}}}, "service.terminal_condition is output only"},
		{"secret version", &secretmanagerpb.AddSecretVersionRequest{Parent: "projects/p/secrets/s", Payload: &secretmanagerpb.SecretPayload{Data: []byte("v")}}, ""},
		{"secret payload required", &secretmanagerpb.AddSecretVersionRequest{Parent: "projects/p/secrets/s"}, "payload is required"},
		{"secret create_time", &secretmanagerpb.CreateSecretRequest{Parent: "projects/p", SecretId: "s", Secret: &secretmanagerpb.Secret{CreateTime: nil, Name: "x"}}, "secret.name is output only"},
		{"time series view FULL (zero enum) accepted", &monitoringpb.ListTimeSeriesRequest{Name: "projects/p", Filter: "f", Interval: &monitoringpb.TimeInterval{}}, ""},
		{"list entries", &loggingpb.ListLogEntriesRequest{ResourceNames: []string{"projects/p"}}, ""},
		{"list entries needs resources", &loggingpb.ListLogEntriesRequest{}, "resource_names is required"},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := checkFieldBehavior(c.req.ProtoReflect(), "", true)
			if c.want == "" && err != nil || c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)) {
				t.Fatalf("check = %v; want %q", err, c.want)
			}
		})
	}
	// IMMUTABLE: Secret.replication (secretmanager resources.proto).
	stored := &secretmanagerpb.Secret{Replication: &secretmanagerpb.Replication{Replication: &secretmanagerpb.Replication_Automatic_{Automatic: &secretmanagerpb.Replication_Automatic{}}}}
	same := proto.Clone(stored).(*secretmanagerpb.Secret)
	same.Labels = map[string]string{"a": "b"}
	if err := checkImmutable(same.ProtoReflect(), stored.ProtoReflect(), "secret"); err != nil {
		t.Errorf("unchanged replication: %v", err)
	}
	changed := &secretmanagerpb.Secret{Replication: &secretmanagerpb.Replication{Replication: &secretmanagerpb.Replication_UserManaged_{UserManaged: &secretmanagerpb.Replication_UserManaged{}}}}
	if err := checkImmutable(changed.ProtoReflect(), stored.ProtoReflect(), "secret"); err == nil || !strings.Contains(err.Error(), "secret.replication is immutable") {
		t.Errorf("changed replication = %v", err)
	}
}

// TestFailedReconcileKeepsServingState: after a failed reconciliation the
// service keeps the observed generation of its last serving revision
// (service.proto, Service.reconciling).
func TestFailedReconcileKeepsServingState(t *testing.T) {
	f := New()
	t.Cleanup(f.Close)
	f.BadImage("bad:1", "image not found")
	f.mu.Lock()
	s := &service{revs: map[string]*revision{}}
	svc := &runpb.Service{Name: "projects/p/locations/l/services/s", Template: &runpb.RevisionTemplate{Containers: []*runpb.Container{{Image: "ok:1"}}}}
	f.applyLocked(s, svc)
	for s.pending != "" {
		f.settleLocked(s)
	}
	served := s.svc.ObservedGeneration
	svc2 := proto.Clone(s.svc).(*runpb.Service)
	svc2.Template.Containers[0].Image = "bad:1"
	f.applyLocked(s, svc2)
	for s.pending != "" {
		f.settleLocked(s)
	}
	f.mu.Unlock()
	if s.svc.TerminalCondition.GetState() != runpb.Condition_CONDITION_FAILED || s.svc.ObservedGeneration != served || s.svc.Generation == served {
		t.Fatalf("after a failed reconcile: %v, observed %d, generation %d (served %d)", s.svc.TerminalCondition.GetState(), s.svc.ObservedGeneration, s.svc.Generation, served)
	}
}
