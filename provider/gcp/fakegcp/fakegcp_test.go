package fakegcp_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	logging "cloud.google.com/go/logging/apiv2"
	"cloud.google.com/go/logging/apiv2/loggingpb"
	run "cloud.google.com/go/run/apiv2"
	"cloud.google.com/go/run/apiv2/runpb"
	secretmanager "cloud.google.com/go/secretmanager/apiv1"
	"cloud.google.com/go/secretmanager/apiv1/secretmanagerpb"
	"google.golang.org/api/iterator"
	"google.golang.org/api/option"
	"google.golang.org/genproto/googleapis/api/monitoredres"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/alphaswarm/controller/provider/gcp/fakegcp"
)

type documented struct {
	RunService struct {
		Service string `json:"service"`
	} `json:"run_service"`
	SecretManager struct {
		Parent   string   `json:"parent"`
		SecretID string   `json:"secret_id"`
		Payloads []string `json:"payloads"`
	} `json:"secret_manager"`
}

func load(t *testing.T) (documented, *fakegcp.Server, []option.ClientOption) {
	t.Helper()
	b, err := os.ReadFile("testdata/documented.json")
	if err != nil {
		t.Fatal(err)
	}
	var d documented
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatal(err)
	}
	f := fakegcp.New()
	t.Cleanup(f.Close)
	return d, f, []option.ClientOption{option.WithGRPCConn(f.Conn()), option.WithoutAuthentication()}
}

func TestRunServiceDocumented(t *testing.T) {
	d, f, opts := load(t)
	ctx := context.Background()
	c, err := run.NewServicesClient(ctx, opts...)
	if err != nil {
		t.Fatal(err)
	}
	name := d.RunService.Service
	parent, id := name[:len(name)-len("/services/hello")], "hello"
	svc := &runpb.Service{Name: "ignored", Template: &runpb.RevisionTemplate{Containers: []*runpb.Container{{Image: "us-docker.pkg.dev/cloudrun/container/hello"}}}}
	op, err := c.CreateService(ctx, &runpb.CreateServiceRequest{Parent: parent, ServiceId: id, Service: svc})
	if err != nil {
		t.Fatal(err)
	}
	got, err := op.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got.Name != name {
		t.Fatalf("created name %q, want %q (composed from parent and service_id)", got.Name, name)
	}
	// Poll as documented: until observedGeneration == generation and
	// the terminal condition is final.
	var s *runpb.Service
	for i := 0; ; i++ {
		if s, err = c.GetService(ctx, &runpb.GetServiceRequest{Name: name}); err != nil {
			t.Fatal(err)
		}
		if s.ObservedGeneration == s.Generation && s.TerminalCondition.GetState() == runpb.Condition_CONDITION_SUCCEEDED {
			break
		}
		if s.TerminalCondition.GetState() != runpb.Condition_CONDITION_RECONCILING || !s.Reconciling {
			t.Fatalf("poll %d: state %v reconciling %v, want RECONCILING while not settled", i, s.TerminalCondition.GetState(), s.Reconciling)
		}
		if i > 10 {
			t.Fatal("never settled")
		}
	}
	if s.LatestReadyRevision == "" || s.LatestReadyRevision != s.LatestCreatedRevision {
		t.Fatalf("latest ready %q, created %q", s.LatestReadyRevision, s.LatestCreatedRevision)
	}
	gen := s.Generation
	s.Template.Containers[0].Image += ":2"
	// Sending the read resource back as it is carries OUTPUT_ONLY fields,
	// which the fake refuses (contract.go); without them it is accepted.
	if _, err := c.UpdateService(ctx, &runpb.UpdateServiceRequest{Service: s}); status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "output only") {
		t.Fatalf("update carrying output-only fields = %v", err)
	}
	s = &runpb.Service{Name: s.Name, Template: s.Template, Scaling: s.Scaling, Labels: s.Labels, Etag: s.Etag}
	op2, err := c.UpdateService(ctx, &runpb.UpdateServiceRequest{Service: s})
	if err != nil {
		t.Fatal(err)
	}
	u, err := op2.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if u.Generation <= gen {
		t.Fatalf("generation %d after update, want > %d", u.Generation, gen)
	}
	if _, err := c.CreateService(ctx, &runpb.CreateServiceRequest{Parent: parent, ServiceId: id, Service: svc}); status.Code(err) != codes.AlreadyExists {
		t.Fatalf("second create: %v, want ALREADY_EXISTS", err)
	}
	if _, err := c.GetService(ctx, &runpb.GetServiceRequest{Name: parent + "/services/absent"}); status.Code(err) != codes.NotFound {
		t.Fatalf("get absent: %v, want NOT_FOUND", err)
	}
	_ = f
}

func TestSecretManagerDocumented(t *testing.T) {
	d, _, opts := load(t)
	ctx := context.Background()
	c, err := secretmanager.NewClient(ctx, opts...)
	if err != nil {
		t.Fatal(err)
	}
	sm := d.SecretManager
	req := &secretmanagerpb.CreateSecretRequest{Parent: sm.Parent, SecretId: sm.SecretID, Secret: &secretmanagerpb.Secret{
		Replication: &secretmanagerpb.Replication{Replication: &secretmanagerpb.Replication_Automatic_{Automatic: &secretmanagerpb.Replication_Automatic{}}}}}
	if _, err := c.CreateSecret(ctx, req); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateSecret(ctx, req); status.Code(err) != codes.AlreadyExists {
		t.Fatalf("second CreateSecret: %v, want ALREADY_EXISTS", err)
	}
	secret := sm.Parent + "/secrets/" + sm.SecretID
	for i, p := range sm.Payloads {
		v, err := c.AddSecretVersion(ctx, &secretmanagerpb.AddSecretVersionRequest{Parent: secret, Payload: &secretmanagerpb.SecretPayload{Data: []byte(p)}})
		if err != nil {
			t.Fatal(err)
		}
		if want := secret + "/versions/" + string(rune('1'+i)); v.Name != want {
			t.Fatalf("version name %q, want %q", v.Name, want)
		}
	}
	a, err := c.AccessSecretVersion(ctx, &secretmanagerpb.AccessSecretVersionRequest{Name: secret + "/versions/latest"})
	if err != nil {
		t.Fatal(err)
	}
	if string(a.Payload.Data) != sm.Payloads[len(sm.Payloads)-1] || a.Name != secret+"/versions/2" {
		t.Fatalf("latest = %q (%s)", a.Payload.Data, a.Name)
	}
}

func TestLoggingDocumented(t *testing.T) {
	_, f, opts := load(t)
	ctx := context.Background()
	c, err := logging.NewClient(ctx, opts...)
	if err != nil {
		t.Fatal(err)
	}
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var entries []*loggingpb.LogEntry
	for i := range 5 {
		e := &loggingpb.LogEntry{LogName: "projects/p/logs/x", Payload: &loggingpb.LogEntry_TextPayload{TextPayload: string(rune('a' + i))}}
		e.Timestamp = timestamppb.New(base.Add(time.Duration(i) * time.Second))
		entries = append(entries, e)
	}
	// Entries need a monitored resource, here the request's default
	// (LogEntry.resource is REQUIRED; the fake checks field behaviours).
	if _, err := c.WriteLogEntries(ctx, &loggingpb.WriteLogEntriesRequest{Entries: entries}); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("entries without a resource = %v; want INVALID_ARGUMENT", err)
	}
	if _, err := c.WriteLogEntries(ctx, &loggingpb.WriteLogEntriesRequest{Entries: entries, Resource: &monitoredres.MonitoredResource{Type: "global"}}); err != nil {
		t.Fatal(err)
	}
	read := func(order string, size int32) string {
		it := c.ListLogEntries(ctx, &loggingpb.ListLogEntriesRequest{ResourceNames: []string{"projects/p"}, OrderBy: order, PageSize: size})
		out := ""
		for {
			e, err := it.Next()
			if errors.Is(err, iterator.Done) {
				return out
			}
			if err != nil {
				t.Fatal(err)
			}
			out += e.GetTextPayload()
		}
	}
	if got := read("", 2); got != "abcde" {
		t.Fatalf("default order, pages of 2: %q", got)
	}
	if got := read("timestamp desc", 0); got != "edcba" {
		t.Fatalf("timestamp desc: %q", got)
	}
	_ = f
}
