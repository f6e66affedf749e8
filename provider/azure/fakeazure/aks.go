package fakeazure

import (
	"context"
	"net/http"

	azfake "github.com/Azure/azure-sdk-for-go/sdk/azcore/fake"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/containerservice/armcontainerservice/v6"
	aksfake "github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/containerservice/armcontainerservice/v6/fake"
)

// aksCluster is a managed cluster whose credentials the fake hands out.
type aksCluster struct {
	user, admin []byte
}

// AddAKSCluster makes the managed cluster name (in the fake's resource
// group) exist, with the kubeconfigs ListClusterUserCredentials and
// ListClusterAdminCredentials return (nil admin: local accounts disabled,
// answered with BadRequest as AKS does).
func (f *Fake) AddAKSCluster(name string, user, admin []byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.aks == nil {
		f.aks = map[string]*aksCluster{}
	}
	f.aks[name] = &aksCluster{user: user, admin: admin}
}

// LastCredentialFormat is the format the last ListClusterUserCredentials
// asked for ("exec", "azure" or "").
func (f *Fake) LastCredentialFormat() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.aksFormat
}

// AKSTransport is the Container Service (managed clusters) transport.
func (f *Fake) AKSTransport() policy.Transporter {
	return aksfake.NewServerFactoryTransport(&aksfake.ServerFactory{ManagedClustersServer: aksfake.ManagedClustersServer{
		ListClusterUserCredentials: func(_ context.Context, rg, name string, o *armcontainerservice.ManagedClustersClientListClusterUserCredentialsOptions) (resp azfake.Responder[armcontainerservice.ManagedClustersClientListClusterUserCredentialsResponse], e azfake.ErrorResponder) {
			f.mu.Lock()
			defer f.mu.Unlock()
			f.calls["ListClusterUserCredentials"]++
			f.aksFormat = ""
			if o != nil && o.Format != nil {
				f.aksFormat = string(*o.Format)
			}
			c := f.cluster(rg, name, &e)
			if c == nil {
				return
			}
			resp.SetResponse(http.StatusOK, armcontainerservice.ManagedClustersClientListClusterUserCredentialsResponse{CredentialResults: armcontainerservice.CredentialResults{
				Kubeconfigs: []*armcontainerservice.CredentialResult{{Name: to.Ptr("clusterUser"), Value: c.user}}}}, nil)
			return
		},
		ListClusterAdminCredentials: func(_ context.Context, rg, name string, _ *armcontainerservice.ManagedClustersClientListClusterAdminCredentialsOptions) (resp azfake.Responder[armcontainerservice.ManagedClustersClientListClusterAdminCredentialsResponse], e azfake.ErrorResponder) {
			f.mu.Lock()
			defer f.mu.Unlock()
			f.calls["ListClusterAdminCredentials"]++
			c := f.cluster(rg, name, &e)
			if c == nil {
				return
			}
			if c.admin == nil {
				e.SetResponseError(http.StatusBadRequest, "BadRequest")
				return
			}
			resp.SetResponse(http.StatusOK, armcontainerservice.ManagedClustersClientListClusterAdminCredentialsResponse{CredentialResults: armcontainerservice.CredentialResults{
				Kubeconfigs: []*armcontainerservice.CredentialResult{{Name: to.Ptr("clusterAdmin"), Value: c.admin}}}}, nil)
			return
		},
	}})
}

func (f *Fake) cluster(rg, name string, e *azfake.ErrorResponder) *aksCluster {
	if !f.rgOK(rg, e) {
		return nil
	}
	c := f.aks[name]
	if c == nil {
		e.SetResponseError(http.StatusNotFound, "ResourceNotFound")
	}
	return c
}
