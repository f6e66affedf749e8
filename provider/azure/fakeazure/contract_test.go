package fakeazure

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/arm"
	azfake "github.com/Azure/azure-sdk-for-go/sdk/azcore/fake"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/containerinstance/armcontainerinstance/v2"
)

// TestReadOnlyContract: the READ-ONLY marks are read from the SDK's
// generated models of this build, and a create that sets one (here the
// provisioning state and the instance view, which ACI computes) is refused
// and recorded; the same group without them is accepted.
func TestReadOnlyContract(t *testing.T) {
	ro, err := ReadOnlyFields()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ typ, field string }{
		{"armcontainerinstance.ContainerGroupPropertiesProperties", "ProvisioningState"},
		{"armcontainerinstance.ContainerGroup", "ID"},
		{"armcontainerinstance.ContainerProperties", "InstanceView"},
		{"azsecrets.SecretAttributes", "Created"},
	} {
		if !ro[c.typ][c.field] {
			t.Errorf("%s.%s is not READ-ONLY in the SDK's models (read %d types)", c.typ, c.field, len(ro))
		}
	}
	f := New(Options{SubscriptionID: "s", ResourceGroup: "rg"})
	t.Cleanup(f.Close)
	groups, err := armcontainerinstance.NewContainerGroupsClient("s", &azfake.TokenCredential{}, &arm.ClientOptions{ClientOptions: azcore.ClientOptions{Transport: f.ACITransport()}})
	if err != nil {
		t.Fatal(err)
	}
	def := func() armcontainerinstance.ContainerGroup {
		return armcontainerinstance.ContainerGroup{Location: to.Ptr("westeurope"), Properties: &armcontainerinstance.ContainerGroupPropertiesProperties{
			OSType: to.Ptr(armcontainerinstance.OperatingSystemTypesLinux),
			Containers: []*armcontainerinstance.Container{{Name: to.Ptr("app"), Properties: &armcontainerinstance.ContainerProperties{
				Image: to.Ptr("img:1"), Resources: &armcontainerinstance.ResourceRequirements{Requests: &armcontainerinstance.ResourceRequests{CPU: to.Ptr[float64](1), MemoryInGB: to.Ptr[float64](1)}}}}}}}
	}
	bad := def()
	bad.Properties.ProvisioningState = to.Ptr("Succeeded")
	_, err = groups.BeginCreateOrUpdate(context.Background(), "rg", "g", bad, nil)
	var re *azcore.ResponseError
	if !errors.As(err, &re) || re.StatusCode != 400 || len(f.Violations()) != 1 || !strings.Contains(f.Violations()[0], "ProvisioningState is read-only") {
		t.Fatalf("create with provisioningState = %v; violations %q", err, f.Violations())
	}
	if _, err := groups.BeginCreateOrUpdate(context.Background(), "rg", "g", def(), nil); err != nil {
		t.Fatalf("create without read-only properties: %v", err)
	}
}
