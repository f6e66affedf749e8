package aws_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/alphaswarm/controller/provider"
	"github.com/alphaswarm/controller/provider/aws/fakeaws"
	"github.com/alphaswarm/controller/workload"
)

func TestApplyConfigParameters(t *testing.T) {
	p, f := openFake(t, fakeaws.Options{}, nil)
	if _, err := p.Start(ctx(t), spec("cfg", 1)); err != nil {
		t.Fatal(err)
	}
	if err := p.ApplyConfig(ctx(t), "cfg", map[string]string{"greeting": "hi", "secret.token": "s3cr3t-value", "old": "x"}); err != nil {
		t.Fatal(err)
	}
	if err := p.ApplyConfig(ctx(t), "cfg", map[string]string{"greeting": "hello", "secret.token": "s3cr3t-value"}); err != nil {
		t.Fatal(err)
	}
	if v, typ, ok := f.Parameter("/alphaswarm/prod/cfg/greeting"); !ok || v != "hello" || typ != "String" {
		t.Errorf("greeting parameter = %q %q %v", v, typ, ok)
	}
	if _, typ, ok := f.Parameter("/alphaswarm/prod/cfg/secret.token"); !ok || typ != "SecureString" {
		t.Errorf("secret.token parameter type = %q %v, want SecureString", typ, ok)
	}
	if _, _, ok := f.Parameter("/alphaswarm/prod/cfg/old"); ok {
		t.Error("a key dropped from the config is still stored")
	}
	envs := f.TaskEnv("default", "cfg")
	if len(envs) != 1 || envs[0]["greeting"] != "hello" || envs[0]["token"] != "s3cr3t-value" || envs[0]["old"] != "" {
		t.Errorf("task env = %v", envs)
	}
	td := f.TaskDefinition(f.Service("default", "cfg").TaskDef)
	b, _ := json.Marshal(td["containerDefinitions"])
	if strings.Contains(string(b), "s3cr3t-value") || strings.Contains(string(b), `"hello"`) {
		t.Errorf("config values leaked into the task definition: %s", b)
	}
	// A later Start of the same spec keeps the config references.
	if _, err := p.Start(ctx(t), spec("cfg", 1)); err != nil {
		t.Fatal(err)
	}
	if envs := f.TaskEnv("default", "cfg"); envs[0]["greeting"] != "hello" {
		t.Errorf("after Start, task env = %v", envs)
	}
}

// TestConfigValueLimit (review #9, SSM): a value over the Standard tier's
// 4 KB is invalid_argument naming the key, before any parameter is
// written; the fake refuses such a PutParameter as SSM does.
func TestConfigValueLimit(t *testing.T) {
	p, f := openFake(t, fakeaws.Options{}, nil)
	sp := spec("big", 1)
	sp.Config = map[string]string{"A": "small", "B": strings.Repeat("x", 4097)}
	_, err := p.Start(ctx(t), sp)
	if workload.CodeOf(err) != workload.InvalidArgument || !strings.Contains(err.Error(), "config.B") || !provider.NothingChanged(err) {
		t.Fatalf("Start = %v; want invalid_argument at config.B", err)
	}
	if n := f.Requests("ssm.PutParameter") + f.Requests("ecs.RegisterTaskDefinition"); n != 0 {
		t.Fatalf("%d writes before the refusal", n)
	}
	sp.Config = nil
	if _, err := p.Start(ctx(t), sp); err != nil {
		t.Fatal(err)
	}
	err = p.ApplyConfig(ctx(t), "big", map[string]string{"A": "small", "B": strings.Repeat("x", 4097)})
	if workload.CodeOf(err) != workload.InvalidArgument || f.Requests("ssm.PutParameter") != 0 {
		t.Fatalf("ApplyConfig = %v after %d PutParameter", err, f.Requests("ssm.PutParameter"))
	}
	if err := p.ApplyConfig(ctx(t), "big", map[string]string{"B": strings.Repeat("x", 4096)}); err != nil {
		t.Fatalf("4096 bytes: %v", err)
	}
}
