package fakeazure

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	azfake "github.com/Azure/azure-sdk-for-go/sdk/azcore/fake"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"
	kvfake "github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets/fake"
)

type secretVersion struct {
	version, value string
	tags           map[string]*string
	disabled       bool
	created        time.Time
}

// KeyVaultTransport is the Key Vault secrets transport.
func (f *Fake) KeyVaultTransport() policy.Transporter {
	return disabledShape{kvfake.NewServerTransport(&kvfake.Server{SetSecret: f.setSecret, GetSecret: f.getSecret, UpdateSecretProperties: f.updateSecretProperties,
		NewListSecretPropertiesVersionsPager: f.listSecretVersions})}
}

// disabledShape gives a read of a disabled secret Key Vault's error
// shape: 403 with the top-level code Forbidden and the reason in the inner
// error ({"error":{"code":"Forbidden","message":"Operation get is not
// allowed on a disabled secret.","innererror":{"code":"SecretDisabled"}}},
// as reported in Azure/azure-sdk-for-java#17991 and
// ansible-collections/azure#1989); the SDK's fake server can set only the
// top-level code.
type disabledShape struct{ next policy.Transporter }

func (t disabledShape) Do(req *http.Request) (*http.Response, error) {
	resp, err := t.next.Do(req)
	var re *azcore.ResponseError
	if !errors.As(err, &re) || re.StatusCode != http.StatusForbidden || re.ErrorCode != "SecretDisabled" {
		return resp, err
	}
	body := `{"error":{"code":"Forbidden","message":"Operation get is not allowed on a disabled secret.","innererror":{"code":"SecretDisabled"}}}`
	return &http.Response{StatusCode: http.StatusForbidden, Status: "403 Forbidden", Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: http.Header{"Content-Type": {"application/json; charset=utf-8"}},
		Body:   io.NopCloser(strings.NewReader(body)), ContentLength: int64(len(body)), Request: req}, nil
}

func (f *Fake) setSecret(_ context.Context, name string, p azsecrets.SetSecretParameters, _ *azsecrets.SetSecretOptions) (resp azfake.Responder[azsecrets.SetSecretResponse], e azfake.ErrorResponder) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls["SetSecret"]++
	if msg := f.checkReadOnly("SetSecret", p); msg != "" {
		e.SetResponseError(http.StatusBadRequest, "BadParameter")
		return
	}
	// Key Vault service limits: "Secret value size: 25k bytes"
	// (learn.microsoft.com, Azure Key Vault service limits); the fake
	// takes 25,000 bytes, the lower reading of "25k".
	if len(str(p.Value)) > MaxSecretBytes {
		e.SetResponseError(http.StatusBadRequest, "BadParameter")
		return
	}
	f.kvSeq++
	// Creation times one second apart: versions are told apart by
	// attributes.created (the versions list is not ordered).
	v := secretVersion{version: fmt.Sprintf("%032x", f.kvSeq), value: str(p.Value), tags: p.Tags,
		created: time.Unix(1_700_000_000+int64(f.kvSeq), 0).UTC()}
	f.secrets[name] = append(f.secrets[name], v)
	resp.SetResponse(http.StatusOK, azsecrets.SetSecretResponse{Secret: f.secretOf(name, v)}, nil)
	return
}

func (f *Fake) secretOf(name string, v secretVersion) azsecrets.Secret {
	return azsecrets.Secret{ID: to.Ptr(azsecrets.ID(VaultURL + "/secrets/" + name + "/" + v.version)),
		Value: to.Ptr(v.value), Tags: v.tags, Attributes: &azsecrets.SecretAttributes{Enabled: to.Ptr(!v.disabled), Created: to.Ptr(v.created), Updated: to.Ptr(v.created)}}
}

func (f *Fake) getSecret(_ context.Context, name, version string, _ *azsecrets.GetSecretOptions) (resp azfake.Responder[azsecrets.GetSecretResponse], e azfake.ErrorResponder) {
	f.mu.Lock()
	defer f.mu.Unlock()
	vs := f.secrets[name]
	for i := len(vs) - 1; i >= 0; i-- {
		if version == "" || vs[i].version == version {
			if vs[i].disabled {
				// Key Vault: 403, "Operation get is not allowed on a
				// disabled secret" (inner error SecretDisabled).
				e.SetResponseError(http.StatusForbidden, "SecretDisabled")
				return
			}
			resp.SetResponse(http.StatusOK, azsecrets.GetSecretResponse{Secret: f.secretOf(name, vs[i])}, nil)
			return
		}
	}
	e.SetResponseError(http.StatusNotFound, "SecretNotFound")
	return
}

func (f *Fake) updateSecretProperties(_ context.Context, name, version string, p azsecrets.UpdateSecretPropertiesParameters, _ *azsecrets.UpdateSecretPropertiesOptions) (resp azfake.Responder[azsecrets.UpdateSecretPropertiesResponse], e azfake.ErrorResponder) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls["UpdateSecretProperties"]++
	if msg := f.checkReadOnly("UpdateSecretProperties", p); msg != "" {
		e.SetResponseError(http.StatusBadRequest, "BadParameter")
		return
	}
	vs := f.secrets[name]
	for i := len(vs) - 1; i >= 0; i-- {
		if version == "" || vs[i].version == version {
			if a := p.SecretAttributes; a != nil && a.Enabled != nil {
				vs[i].disabled = !*a.Enabled
			}
			s := f.secretOf(name, vs[i])
			resp.SetResponse(http.StatusOK, azsecrets.UpdateSecretPropertiesResponse{Secret: azsecrets.Secret{ID: s.ID, Tags: s.Tags, Attributes: s.Attributes}}, nil)
			return
		}
	}
	e.SetResponseError(http.StatusNotFound, "SecretNotFound")
	return
}

// listSecretVersions serves Get Secret Versions
// (GET {vault}/secrets/{name}/versions): "List all versions of the
// specified secret. The full secret identifier and attributes are
// provided in the response. No values are returned for the secrets."
// Pages hold up to maxresults items, "If not specified, the service will
// return up to 25 results" (Key Vault REST reference, Get Secret
// Versions); the next page is reached through nextLink. A name the vault
// does not have answers 404 SecretNotFound, as Get Secret does (the
// reference lists only the default error response; unverified live).
// The versions come in creation order here; clients must not rely on an
// order.
func (f *Fake) listSecretVersions(name string, o *azsecrets.ListSecretPropertiesVersionsOptions) (resp azfake.PagerResponder[azsecrets.ListSecretPropertiesVersionsResponse]) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls["ListSecretPropertiesVersions"]++
	vs := f.secrets[name]
	if len(vs) == 0 {
		resp.AddResponseError(http.StatusNotFound, "SecretNotFound")
		return
	}
	const pageSize = 25
	for i := 0; i < len(vs); i += pageSize {
		var page []*azsecrets.SecretProperties
		for _, v := range vs[i:min(i+pageSize, len(vs))] {
			s := f.secretOf(name, v)
			page = append(page, &azsecrets.SecretProperties{ID: s.ID, Tags: s.Tags, Attributes: s.Attributes})
		}
		resp.AddPage(http.StatusOK, azsecrets.ListSecretPropertiesVersionsResponse{
			SecretPropertiesListResult: azsecrets.SecretPropertiesListResult{Value: page}}, nil)
	}
	return
}

// SecretVersions returns how many versions of a Key Vault secret exist
// and whether the latest is enabled.
func (f *Fake) SecretVersions(name string) (n int, latestEnabled bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	vs := f.secrets[name]
	if len(vs) == 0 {
		return 0, false
	}
	return len(vs), !vs[len(vs)-1].disabled
}

// Secret returns the latest value of a Key Vault secret.
func (f *Fake) Secret(name string) (string, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	vs := f.secrets[name]
	if len(vs) == 0 {
		return "", false
	}
	return vs[len(vs)-1].value, true
}

// MaxSecretBytes is the Key Vault secret value limit the fake enforces.
const MaxSecretBytes = 25000
