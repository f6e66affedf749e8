package azure

import (
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/containerinstance/armcontainerinstance/v2"
)

func mkGroup(name, prov, state, cstate string, started time.Time) *armcontainerinstance.ContainerGroup {
	return &armcontainerinstance.ContainerGroup{Name: to.Ptr(name), Properties: &armcontainerinstance.ContainerGroupPropertiesProperties{
		ProvisioningState: to.Ptr(prov),
		InstanceView:      &armcontainerinstance.ContainerGroupPropertiesInstanceView{State: to.Ptr(state)},
		Containers: []*armcontainerinstance.Container{{Name: to.Ptr(containerName), Properties: &armcontainerinstance.ContainerProperties{
			Image: to.Ptr("img"),
			InstanceView: &armcontainerinstance.ContainerPropertiesInstanceView{RestartCount: to.Ptr[int32](0),
				CurrentState: &armcontainerinstance.ContainerState{State: to.Ptr(cstate), StartTime: to.Ptr(started)}},
		}}},
	}}
}
