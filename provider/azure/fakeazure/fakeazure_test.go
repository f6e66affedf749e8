package fakeazure

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/arm"
	azfake "github.com/Azure/azure-sdk-for-go/sdk/azcore/fake"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/data/azappconfig"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/containerinstance/armcontainerinstance/v2"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/monitor/armmonitor"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"
)

const armBase = "https://management.azure.com"

func load(t *testing.T, name string, v any) {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
}

func armOpts(tr policy.Transporter) *arm.ClientOptions {
	return &arm.ClientOptions{ClientOptions: azcore.ClientOptions{Transport: tr}}
}

func newFake(t *testing.T, o Options) *Fake {
	f := New(o)
	t.Cleanup(f.Close)
	return f
}

// rawDo sends a request straight to a fake transport, as the SDK's
// pipeline would after naming the operation, and decodes the JSON body.
func rawDo(t *testing.T, tr policy.Transporter, op, method, url string, body any) (*http.Response, map[string]any) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(context.WithValue(context.Background(), runtime.CtxAPINameKey{}, op), method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := tr.Do(req)
	if err != nil {
		t.Fatalf("%s: %v", op, err)
	}
	defer resp.Body.Close()
	var m map[string]any
	if b, _ := io.ReadAll(resp.Body); len(b) > 0 {
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatalf("%s: body %q: %v", op, b, err)
		}
	}
	return resp, m
}

func pollDone[T any](t *testing.T, p *runtime.Poller[T]) T {
	t.Helper()
	ctx := context.Background()
	for !p.Done() {
		if _, err := p.Poll(ctx); err != nil {
			t.Fatal(err)
		}
	}
	res, err := p.Result(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// TestContainerGroupGetMatchesReference creates the reference example's
// group through the SDK client and checks that the fake's Get answers
// with the example's documented body, plus the instance view a live
// group has.
func TestContainerGroupGetMatchesReference(t *testing.T) {
	f := newFake(t, Options{SubscriptionID: "subid", ResourceGroup: "demo", PendingReads: 1})
	var example map[string]any
	load(t, "ContainerGroups_Get_Succeeded.json", &example)
	delete(example, "_source")
	b, _ := json.Marshal(example)
	var cg armcontainerinstance.ContainerGroup
	if err := json.Unmarshal(b, &cg); err != nil {
		t.Fatal(err)
	}
	cg.ID, cg.Name, cg.Type, cg.Properties.ProvisioningState, cg.Properties.IPAddress.IP = nil, nil, nil, nil, nil
	client, err := armcontainerinstance.NewContainerGroupsClient("subid", &azfake.TokenCredential{}, armOpts(f.ACITransport()))
	if err != nil {
		t.Fatal(err)
	}
	poller, err := client.BeginCreateOrUpdate(context.Background(), "demo", "demo1", cg, nil)
	if err != nil {
		t.Fatal(err)
	}
	created := pollDone(t, poller)
	if str(created.Name) != "demo1" || str(created.ID) != example["id"] {
		t.Errorf("create returned %s %s", str(created.Name), str(created.ID))
	}
	resp, got := rawDo(t, f.ACITransport(), "ContainerGroupsClient.Get", http.MethodGet,
		armBase+"/subscriptions/subid/resourceGroups/demo/providers/Microsoft.ContainerInstance/containerGroups/demo1?api-version=2023-05-01", nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("Get: %d", resp.StatusCode)
	}
	props := got["properties"].(map[string]any)
	view, ok := props["instanceView"].(map[string]any)
	if !ok || view["state"] != "Running" {
		t.Errorf("instanceView = %v, want state Running", props["instanceView"])
	}
	delete(props, "instanceView")
	c0 := props["containers"].([]any)[0].(map[string]any)["properties"].(map[string]any)
	cview, ok := c0["instanceView"].(map[string]any)
	if !ok || cview["currentState"].(map[string]any)["state"] != "Running" || cview["restartCount"] != 0.0 {
		t.Errorf("container instanceView = %v", c0["instanceView"])
	}
	delete(c0, "instanceView")
	// The fake allocates no IP.
	delete(example["properties"].(map[string]any)["ipAddress"].(map[string]any), "ip")
	if !reflect.DeepEqual(got, example) {
		gb, _ := json.MarshalIndent(got, "", "  ")
		eb, _ := json.MarshalIndent(example, "", "  ")
		t.Fatalf("Get body differs from the reference example:\ngot  %s\nwant %s", gb, eb)
	}
}

func TestContainerGroupLifecycle(t *testing.T) {
	f := newFake(t, Options{SubscriptionID: "s", ResourceGroup: "rg", StartupLine: "up", FailingImages: []string{"bad:1"}})
	ctx := context.Background()
	groups, _ := armcontainerinstance.NewContainerGroupsClient("s", &azfake.TokenCredential{}, armOpts(f.ACITransport()))
	containers, _ := armcontainerinstance.NewContainersClient("s", &azfake.TokenCredential{}, armOpts(f.ACITransport()))
	def := func(image string) armcontainerinstance.ContainerGroup {
		return armcontainerinstance.ContainerGroup{Location: to.Ptr("westeurope"),
			Tags: map[string]*string{"alphaswarm.service": to.Ptr("web"), "alphaswarm.target": to.Ptr("t")},
			Properties: &armcontainerinstance.ContainerGroupPropertiesProperties{Containers: []*armcontainerinstance.Container{{
				Name: to.Ptr("app"), Properties: &armcontainerinstance.ContainerProperties{Image: to.Ptr(image),
					EnvironmentVariables: []*armcontainerinstance.EnvironmentVariable{{Name: to.Ptr("S"), SecureValue: to.Ptr("hidden")}}}}}}}
	}
	state := func(name string) (string, string) {
		r, err := groups.Get(ctx, "rg", name, nil)
		if err != nil {
			t.Fatal(err)
		}
		cs := r.Properties.Containers[0].Properties.InstanceView.CurrentState
		if e := r.Properties.Containers[0].Properties.EnvironmentVariables[0]; e.SecureValue != nil || e.Value != nil {
			t.Error("Get returned a secure value")
		}
		return str(r.Properties.InstanceView.State), str(cs.State)
	}
	p, err := groups.BeginCreateOrUpdate(ctx, "rg", "web-0", def("good:1"), nil)
	if err != nil {
		t.Fatal(err)
	}
	pollDone(t, p)
	steps := []struct{ group, container string }{{"Pending", "Waiting"}, {"Running", "Running"}, {"Running", "Running"}}
	for i, s := range steps {
		if g, c := state("web-0"); g != s.group || c != s.container {
			t.Fatalf("read %d: group %s container %s, want %s %s", i, g, c, s.group, s.container)
		}
	}
	first := f.Observe("t", "web").Running
	if _, err := groups.Stop(ctx, "rg", "web-0", nil); err != nil {
		t.Fatal(err)
	}
	if g, c := state("web-0"); g != "Stopped" || c != "Terminated" || len(f.Observe("t", "web").Running) != 0 {
		t.Fatalf("after stop: %s %s", g, c)
	}
	rp, err := groups.BeginRestart(ctx, "rg", "web-0", nil)
	if err != nil {
		t.Fatal(err)
	}
	pollDone(t, rp)
	state("web-0")
	state("web-0")
	again := f.Observe("t", "web").Running
	if len(again) != 1 || again[0] == first[0] {
		t.Fatalf("restart: runs %v then %v, want a new run id", first, again)
	}
	if env := f.Env("t", "web"); env["S"] != "hidden" {
		t.Errorf("the workload does not see its secure value: %v", env)
	}
	// Logs: the example's shape, tail and timestamps.
	var logExample struct{ Content string }
	load(t, "Containers_ListLogs.json", &logExample)
	f.AppendLog("web-0", time.Now(), logExample.Content)
	lr, err := containers.ListLogs(ctx, "rg", "web-0", "app", &armcontainerinstance.ContainersClientListLogsOptions{Tail: to.Ptr[int32](1)})
	if err != nil || strings.TrimSpace(str(lr.Content)) != "log content" {
		t.Fatalf("ListLogs tail 1 = %q, %v", str(lr.Content), err)
	}
	lr, _ = containers.ListLogs(ctx, "rg", "web-0", "app", &armcontainerinstance.ContainersClientListLogsOptions{Timestamps: to.Ptr(true)})
	lines := strings.Split(strings.TrimSpace(str(lr.Content)), "\n")
	if len(lines) != 2 || !strings.HasSuffix(lines[0], " up") {
		t.Fatalf("ListLogs with timestamps = %q", lines)
	}
	if _, err := time.Parse(time.RFC3339Nano, strings.Fields(lines[1])[0]); err != nil {
		t.Errorf("log line %q has no RFC 3339 timestamp", lines[1])
	}
	// An image that cannot be pulled is refused on the request itself
	// (400 InaccessibleImage) and no group is created.
	_, err = groups.BeginCreateOrUpdate(ctx, "rg", "web-1", def("bad:1"), nil)
	var ie *azcore.ResponseError
	if !asResponseError(err, &ie) || ie.ErrorCode != "InaccessibleImage" || ie.StatusCode != 400 {
		t.Fatalf("creating a group with a failing image = %v; want a synchronous 400 InaccessibleImage", err)
	}
	if _, err := groups.Get(ctx, "rg", "web-1", nil); err == nil {
		t.Error("the refused group exists")
	}
	// Unknown groups and resource groups answer with ARM's codes.
	_, err = groups.Get(ctx, "rg", "nope", nil)
	var re *azcore.ResponseError
	if !asResponseError(err, &re) || re.ErrorCode != "ResourceNotFound" || re.StatusCode != 404 {
		t.Errorf("Get unknown = %v", err)
	}
	_, err = groups.Get(ctx, "other-rg", "web-0", nil)
	if !asResponseError(err, &re) || re.ErrorCode != "ResourceGroupNotFound" {
		t.Errorf("Get in unknown resource group = %v", err)
	}
	dp, err := groups.BeginDelete(ctx, "rg", "web-0", nil)
	if err != nil {
		t.Fatal(err)
	}
	pollDone(t, dp)
	if o := f.Observe("t", "web"); len(o.Groups) != 0 {
		t.Errorf("after delete: %v", o.Groups)
	}
}

func asResponseError(err error, re **azcore.ResponseError) bool {
	return errors.As(err, re)
}

func TestExecuteCommandMatchesReference(t *testing.T) {
	f := newFake(t, Options{SubscriptionID: "subid", ResourceGroup: "demo", PendingReads: 1})
	var ex struct {
		Request  map[string]any `json:"request"`
		Response map[string]any `json:"response"`
	}
	load(t, "Containers_ExecuteCommand.json", &ex)
	var gotCmd string
	var rows, cols int
	f.SetExec(func(group, command string, r, c int) (string, string, error) {
		gotCmd, rows, cols = command, r, c
		return "wss://web-socket-uri", "password", nil
	})
	groups, _ := armcontainerinstance.NewContainerGroupsClient("subid", &azfake.TokenCredential{}, armOpts(f.ACITransport()))
	p, _ := groups.BeginCreateOrUpdate(context.Background(), "demo", "demo1", armcontainerinstance.ContainerGroup{Location: to.Ptr("westus"),
		Properties: &armcontainerinstance.ContainerGroupPropertiesProperties{Containers: []*armcontainerinstance.Container{{
			Name: to.Ptr("container1"), Properties: &armcontainerinstance.ContainerProperties{Image: to.Ptr("nginx")}}}}}, nil)
	pollDone(t, p)
	if _, err := groups.Get(context.Background(), "demo", "demo1", nil); err != nil { // Pending → Running
		t.Fatal(err)
	}
	resp, body := rawDo(t, f.ACITransport(), "ContainersClient.ExecuteCommand", http.MethodPost,
		armBase+"/subscriptions/subid/resourceGroups/demo/providers/Microsoft.ContainerInstance/containerGroups/demo1/containers/container1/exec?api-version=2023-05-01", ex.Request)
	if resp.StatusCode != http.StatusOK || !reflect.DeepEqual(body, ex.Response) {
		t.Fatalf("exec = %d %v, want 200 %v", resp.StatusCode, body, ex.Response)
	}
	if gotCmd != "/bin/bash" || rows != 12 || cols != 12 {
		t.Errorf("handler got %q %dx%d", gotCmd, rows, cols)
	}
}

func TestMetrics(t *testing.T) {
	f := newFake(t, Options{SubscriptionID: "s", ResourceGroup: "rg", PendingReads: 1})
	ctx := context.Background()
	groups, _ := armcontainerinstance.NewContainerGroupsClient("s", &azfake.TokenCredential{}, armOpts(f.ACITransport()))
	p, _ := groups.BeginCreateOrUpdate(ctx, "rg", "m-0", armcontainerinstance.ContainerGroup{Location: to.Ptr("westus"),
		Properties: &armcontainerinstance.ContainerGroupPropertiesProperties{Containers: []*armcontainerinstance.Container{{
			Name: to.Ptr("app"), Properties: &armcontainerinstance.ContainerProperties{Image: to.Ptr("nginx")}}}}}, nil)
	pollDone(t, p)
	if _, err := groups.Get(ctx, "rg", "m-0", nil); err != nil {
		t.Fatal(err)
	}
	mc, _ := armmonitor.NewMetricsClient("s", &azfake.TokenCredential{}, armOpts(f.MonitorTransport()))
	time.Sleep(20 * time.Millisecond) // let a 10ms window start after the container
	r, err := mc.List(ctx, "subscriptions/s/resourceGroups/rg/providers/Microsoft.ContainerInstance/containerGroups/m-0", &armmonitor.MetricsClientListOptions{
		Metricnames: to.Ptr("CpuUsage,MemoryUsage"), Interval: to.Ptr("PT0.01S"), Aggregation: to.Ptr("Average")})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Value) != 2 || str(r.Value[0].Name.Value) != "CpuUsage" || *r.Value[0].Unit != armmonitor.MetricUnitCount {
		t.Fatalf("metrics = %+v", r.Value)
	}
	data := r.Value[0].Timeseries[0].Data
	last := data[len(data)-1]
	if last.Average == nil || *last.Average != 250 || last.TimeStamp == nil {
		t.Errorf("latest CpuUsage point = %+v", last)
	}
	if _, err := mc.List(ctx, "subscriptions/s/resourceGroups/rg/providers/Microsoft.ContainerInstance/containerGroups/nope", &armmonitor.MetricsClientListOptions{
		Metricnames: to.Ptr("CpuUsage"), Interval: to.Ptr("PT1M")}); err == nil {
		t.Error("metrics of an unknown group succeeded")
	}
	// ACI metrics have time grains PT1M..PT12H, no P1D or PT2M.
	for _, grain := range []string{"P1D", "PT2M"} {
		if _, err := mc.List(ctx, "subscriptions/s/resourceGroups/rg/providers/Microsoft.ContainerInstance/containerGroups/m-0", &armmonitor.MetricsClientListOptions{
			Metricnames: to.Ptr("CpuUsage"), Interval: to.Ptr(grain)}); err == nil {
			t.Errorf("metrics at grain %s succeeded", grain)
		}
	}
	if _, err := mc.List(ctx, "subscriptions/s/resourceGroups/rg/providers/Microsoft.ContainerInstance/containerGroups/m-0", &armmonitor.MetricsClientListOptions{
		Metricnames: to.Ptr("CpuUsage"), Interval: to.Ptr("PT12H")}); err != nil {
		t.Errorf("metrics at PT12H: %v", err)
	}
	// Without tail, ListLogs returns the newest 4 MB.
	line := strings.Repeat("x", 1023)
	for range 5 << 10 {
		f.AppendLog("m-0", time.Now(), line)
	}
	containers, _ := armcontainerinstance.NewContainersClient("s", &azfake.TokenCredential{}, armOpts(f.ACITransport()))
	lr, err := containers.ListLogs(ctx, "rg", "m-0", "app", nil)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(str(lr.Content)); n > MaxLogBytes || n < MaxLogBytes-2048 || !strings.HasPrefix(str(lr.Content), line) {
		t.Errorf("untailed ListLogs of a 5 MB log returned %d bytes", n)
	}
	if d, ok := parseISODuration("PT1H30M"); !ok || d != 90*time.Minute {
		t.Errorf("parseISODuration = %v %v", d, ok)
	}
}

func TestKeyVault(t *testing.T) {
	f := newFake(t, Options{})
	c, err := azsecrets.NewClient(VaultURL, &azfake.TokenCredential{}, &azsecrets.ClientOptions{ClientOptions: azcore.ClientOptions{Transport: f.KeyVaultTransport()}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	v1, err := c.SetSecret(ctx, "db", azsecrets.SetSecretParameters{Value: to.Ptr("one")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.SetSecret(ctx, "db", azsecrets.SetSecretParameters{Value: to.Ptr("two")}, nil); err != nil {
		t.Fatal(err)
	}
	cases := []struct{ version, want string }{{"", "two"}, {v1.ID.Version(), "one"}}
	for _, cs := range cases {
		r, err := c.GetSecret(ctx, "db", cs.version, nil)
		if err != nil || str(r.Value) != cs.want {
			t.Errorf("GetSecret(db, %q) = %q, %v; want %q", cs.version, str(r.Value), err, cs.want)
		}
	}
	if !strings.HasPrefix(string(*v1.ID), VaultURL+"/secrets/db/") {
		t.Errorf("secret id %s", *v1.ID)
	}
	if _, err := c.GetSecret(ctx, "nope", "", nil); err == nil || !strings.Contains(err.Error(), "SecretNotFound") {
		t.Errorf("GetSecret(nope) = %v", err)
	}
	// A disabled version: 403 Forbidden, the reason in the inner error.
	if _, err := c.UpdateSecretProperties(ctx, "db", "", azsecrets.UpdateSecretPropertiesParameters{SecretAttributes: &azsecrets.SecretAttributes{Enabled: to.Ptr(false)}}, nil); err != nil {
		t.Fatal(err)
	}
	_, err = c.GetSecret(ctx, "db", "", nil)
	var re *azcore.ResponseError
	if !errors.As(err, &re) || re.StatusCode != 403 || re.ErrorCode != "Forbidden" || !strings.Contains(err.Error(), "innererror") || !strings.Contains(err.Error(), "SecretDisabled") {
		t.Errorf("GetSecret of a disabled version = %v (code %q)", err, re.ErrorCode)
	}
}

// TestAppConfigWire pins the REST shapes against the reference examples:
// PUT /kv/Message answers the documented body with ETag and Sync-Token
// headers, GET /kv answers {"items": [...]}.
func TestAppConfigWire(t *testing.T) {
	f := newFake(t, Options{})
	var put struct {
		Key             string         `json:"key"`
		RequestBody     map[string]any `json:"requestBody"`
		ResponseHeaders []string       `json:"responseHeaders"`
		ResponseBody    map[string]any `json:"responseBody"`
	}
	load(t, "AppConfig_PutKeyValue.json", &put)
	do := func(method, path string, body any, auth bool) (*http.Response, map[string]any) {
		var rd io.Reader
		if body != nil {
			b, _ := json.Marshal(body)
			rd = bytes.NewReader(b)
		}
		req, _ := http.NewRequest(method, f.AppConfigURL()+path, rd)
		if auth {
			req.Header.Set("Authorization", "Bearer token")
		}
		resp, err := f.app.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var m map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&m)
		return resp, m
	}
	resp, got := do(http.MethodPut, "/kv/"+put.Key+"?api-version=2023-10-01", put.RequestBody, true)
	if resp.StatusCode != 200 {
		t.Fatalf("PUT: %d", resp.StatusCode)
	}
	for _, h := range put.ResponseHeaders {
		if resp.Header.Get(h) == "" {
			t.Errorf("PUT response lacks header %s", h)
		}
	}
	for k, want := range put.ResponseBody {
		g, ok := got[k]
		if !ok {
			t.Errorf("PUT body lacks %q", k)
			continue
		}
		if k != "etag" && k != "last_modified" && !reflect.DeepEqual(g, want) {
			t.Errorf("PUT body %s = %v, want %v", k, g, want)
		}
	}
	if len(got) != len(put.ResponseBody) {
		t.Errorf("PUT body keys %v, want those of %v", got, put.ResponseBody)
	}
	var list struct {
		Items []map[string]any `json:"items"`
	}
	load(t, "AppConfig_GetKeyValues.json", &list)
	for _, it := range list.Items {
		do(http.MethodPut, "/kv/"+it["key"].(string)+"?label="+it["label"].(string)+"&api-version=2023-10-01", map[string]any{"value": it["value"]}, true)
	}
	resp, got = do(http.MethodGet, "/kv?key=*&label=Asset1&api-version=2023-10-01", nil, true)
	items, _ := got["items"].([]any)
	if resp.StatusCode != 200 || len(items) != 2 || resp.Header.Get("Sync-Token") == "" {
		t.Fatalf("GET /kv = %d %v", resp.StatusCode, got)
	}
	for i, it := range items {
		m := it.(map[string]any)
		for _, k := range []string{"key", "label", "value", "content_type", "tags", "etag", "last_modified"} {
			if _, ok := m[k]; !ok {
				t.Errorf("item %d lacks %q", i, k)
			}
		}
		if m["key"] != list.Items[i]["key"] || m["value"] != list.Items[i]["value"] {
			t.Errorf("item %d = %v, want %v", i, m, list.Items[i])
		}
	}
	if resp, _ := do(http.MethodGet, "/kv?api-version=2023-10-01", nil, false); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("unauthenticated GET = %d", resp.StatusCode)
	}
}

// TestAppConfigClient drives the store with the real azappconfig client,
// whose sync-token policy panics on a response without Sync-Token.
func TestAppConfigClient(t *testing.T) {
	f := newFake(t, Options{})
	c, err := azappconfig.NewClient(f.AppConfigURL(), &azfake.TokenCredential{}, &azappconfig.ClientOptions{ClientOptions: azcore.ClientOptions{Transport: f.AppConfigTransport()}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, kv := range [][2]string{{"alphaswarm/web/a", "1"}, {"alphaswarm/web/b", "2"}, {"alphaswarm/api/a", "3"}} {
		if _, err := c.SetSetting(ctx, kv[0], to.Ptr(kv[1]), &azappconfig.SetSettingOptions{Label: to.Ptr("prod")}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.SetSetting(ctx, "alphaswarm/web/a", to.Ptr("other label"), &azappconfig.SetSettingOptions{Label: to.Ptr("dev")}); err != nil {
		t.Fatal(err)
	}
	list := func() []string {
		pager := c.NewListSettingsPager(azappconfig.SettingSelector{KeyFilter: to.Ptr("alphaswarm/web/*"), LabelFilter: to.Ptr("prod")}, nil)
		var out []string
		for pager.More() {
			page, err := pager.NextPage(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range page.Settings {
				out = append(out, str(s.Key)+"="+str(s.Value))
			}
		}
		return out
	}
	if got := list(); !reflect.DeepEqual(got, []string{"alphaswarm/web/a=1", "alphaswarm/web/b=2"}) {
		t.Fatalf("list = %v", got)
	}
	if _, err := c.DeleteSetting(ctx, "alphaswarm/web/a", &azappconfig.DeleteSettingOptions{Label: to.Ptr("prod")}); err != nil {
		t.Fatal(err)
	}
	if got := list(); !reflect.DeepEqual(got, []string{"alphaswarm/web/b=2"}) {
		t.Fatalf("after delete = %v", got)
	}
	if v, _, ok := f.Setting("alphaswarm/web/a", "dev"); !ok || v != "other label" {
		t.Errorf("the dev label's setting = %q %v", v, ok)
	}
	r, err := c.GetSetting(ctx, "alphaswarm/web/b", &azappconfig.GetSettingOptions{Label: to.Ptr("prod")})
	if err != nil || str(r.Value) != "2" {
		t.Errorf("GetSetting = %v, %v", str(r.Value), err)
	}
}
