package azure

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"testing"
	"time"

	azfake "github.com/Azure/azure-sdk-for-go/sdk/azcore/fake"

	"github.com/alphaswarm/controller/credentials"
	"github.com/alphaswarm/controller/provider"
	"github.com/alphaswarm/controller/provider/azure/aciexec/aciexectest"
	"github.com/alphaswarm/controller/provider/azure/fakeazure"
	"github.com/alphaswarm/controller/provider/providertest"
	"github.com/alphaswarm/controller/workload"
)

const (
	startupLine = "fake container started"
	testTarget  = "edge-aci"
	testSub     = "8ff4a8c2-1d0e-4a7a-9a52-2f3f4c6d7e8f"
	testRG      = "alphaswarm-rg"
)

func testCreds() *credentials.Resolver {
	return credentials.FromMap(map[string]string{
		"AZURE_SUBSCRIPTION_ID": testSub, "AZURE_TENANT_ID": "72f988bf-86f1-41af-91ab-2d7cd011db47",
		"AZURE_CLIENT_ID": "04b07795-8ddb-461a-bbee-02f9e1bf7b46", "AZURE_CLIENT_SECRET": "fake-client-secret-value",
		"ALPHASWARM_SECRET_DB": "s3cr3t-db-password",
	})
}

func rawOptions(opts map[string]any) map[string]json.RawMessage {
	raw := map[string]json.RawMessage{}
	for k, v := range opts {
		b, _ := json.Marshal(v)
		raw[k] = b
	}
	return raw
}

// openFake opens the provider against a new fake with the SDK clients'
// transports replaced by the fake's and azfake.TokenCredential.
func openFake(t *testing.T, fopts fakeazure.Options, extra map[string]any) (*Provider, *fakeazure.Fake) {
	t.Helper()
	if fopts.StartupLine == "" {
		fopts.StartupLine = startupLine
	}
	fopts.SubscriptionID, fopts.ResourceGroup = testSub, testRG
	f := fakeazure.New(fopts)
	// The request contract (fakeazure/contract.go): no request the
	// provider sent set a property the SDK's models mark READ-ONLY.
	t.Cleanup(func() {
		if v := f.Violations(); len(v) > 0 {
			t.Errorf("requests refused by the API contract: %q", v)
		}
	})
	t.Cleanup(f.Close)
	opts := map[string]any{
		"mode": "aci", "resourceGroup": testRG, "location": "westeurope",
		"appConfigEndpoint": f.AppConfigURL(), "keyVaultURL": fakeazure.VaultURL,
		"pollInterval": "5ms", "metricsInterval": "50ms",
	}
	for k, v := range extra {
		if v == nil {
			delete(opts, k)
		} else {
			opts[k] = v
		}
	}
	srv := aciexectest.NewServer(t, runExec)
	f.SetExec(func(group, command string, rows, cols int) (string, string, error) {
		// ACI runs the command on a terminal: Ctrl-C interrupts it.
		uri, pw := srv.SessionWith(command, aciexectest.SessionOptions{CtrlCInterrupts: true})
		return uri, pw, nil
	})
	p, err := open(context.Background(), provider.TargetConfig{Name: testTarget, Provider: Name, Options: rawOptions(opts)}, testCreds(), deps{
		cred: &azfake.TokenCredential{}, aci: f.ACITransport(), monitor: f.MonitorTransport(),
		keyVault: f.KeyVaultTransport(), appConfig: f.AppConfigTransport(), exec: srv.HTTPClient(), attach: f.AttachHTTPClient(), anyMetricsInterval: true,
	})
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { p.(*Provider).Close() })
	return p.(*Provider), f
}

func spec(name string, replicas int) workload.DeploymentSpec {
	return workload.DeploymentSpec{Name: name, Target: testTarget, Image: "mcr.microsoft.com/azuredocs/aci-helloworld:latest",
		Replicas: replicas, Ports: []workload.Port{{Container: 80}},
		Resources: workload.Resources{CPU: "500m", Memory: "512Mi"}}
}

// runExec plays the container's side of an exec session. ACI runs the
// command string as one executable path (Azure/azure-cli#10039), so it is
// never split: "/bin/hello" prints "hello", "readline" copies one line of
// stdin (ACI has no end of input, so a command that read to EOF would
// never end); anything else, "echo hi" included, is not found, as the
// container runtime reports it on the socket.
func runExec(command string, stdin io.Reader, stdout io.Writer) {
	switch command {
	case "/bin/hello":
		fmt.Fprintln(stdout, "hello")
	case "readline":
		line, _ := bufio.NewReader(stdin).ReadString('\n')
		fmt.Fprint(stdout, line)
	case "/bin/wait": // prompts, then waits for input that never ends
		fmt.Fprint(stdout, "$ ")
		_, _ = io.Copy(io.Discard, stdin)
	case "/bin/nointr": // the same, but ignores SIGINT (Ctrl-C)
		fmt.Fprint(stdout, "$ ")
		_, _ = io.Copy(io.Discard, stdin)
		for {
			if _, err := fmt.Fprint(stdout, "."); err != nil {
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	default:
		fmt.Fprintf(stdout, "OCI runtime exec failed: exec failed: unable to start container process: exec: %q: executable file not found in $PATH: unknown\n", command)
	}
}

func harness(p *Provider, f *fakeazure.Fake) providertest.Harness {
	return providertest.Harness{
		Provider: p,
		Target:   testTarget,
		Spec:     spec,
		Observe: func(ctx context.Context, name string) (providertest.Observation, error) {
			o := f.Observe(testTarget, name)
			return providertest.Observation{Running: len(o.Running), InstanceIDs: o.Running}, nil
		},
		ReadConfig: func(ctx context.Context, name, key string) (string, bool, error) {
			v, ok := f.Env(testTarget, name)[key]
			return v, ok, nil
		},
		EmitLog: func(ctx context.Context, name, text string) error {
			f.EmitLog(testTarget, name, text)
			return nil
		},
		StartupLine:          startupLine,
		ExecCommand:          []string{"/bin/hello"},
		ExecOutput:           "hello",
		ExecFailUnobservable: "ACI's exec channel reports no exit status (the socket just closes); the provider returns exit code 0",
		Timeout:              20 * time.Second,
		Cleanup:              func(ctx context.Context, name string) { f.Delete(testTarget, name) },
	}
}

// TestConformance runs the providertest suite against the real SDK
// clients whose transports are the SDK's own fake servers (ACI, Azure
// Monitor, Key Vault) and a TLS App Configuration server, observing the
// fake's state.
func TestConformance(t *testing.T) {
	p, f := openFake(t, fakeazure.Options{}, nil)
	providertest.Run(t, harness(p, f))
}
