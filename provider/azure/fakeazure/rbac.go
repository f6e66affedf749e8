package fakeazure

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
)

// Role is one role assignment of the caller at the resource group's
// scope, as the permissions API reports it (Microsoft.Authorization
// "Permission": actions, notActions, dataActions, notDataActions).
type Role struct {
	Actions        []string `json:"actions"`
	NotActions     []string `json:"notActions"`
	DataActions    []string `json:"dataActions"`
	NotDataActions []string `json:"notDataActions"`
}

// Owner is a role granting every control-plane action (the built-in
// Owner role's actions: "*"); it is what a Fake's caller has unless
// Options.Roles or SetRoles says otherwise.
var Owner = Role{Actions: []string{"*"}}

// FakeClientID is the client id the fake's refusals name.
const FakeClientID = "00000000-0000-0000-0000-0000000000c1"

// SetRoles replaces the caller's role assignments. Every ACI and Azure
// Monitor request after it is authorised against them.
func (f *Fake) SetRoles(roles ...Role) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.opts.Roles = append([]Role{}, roles...) // none: nothing is granted
}

func (f *Fake) roles() []Role {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.opts.Roles == nil {
		return []Role{Owner}
	}
	return append([]Role(nil), f.opts.Roles...)
}

// patternRE turns an RBAC action pattern into a regular expression: "*"
// matches any run of characters, "/" included, and the comparison
// ignores case ("Understand Azure role definitions", learn.microsoft.com:
// "Microsoft.Compute/*", "*/read"; built-in roles spell
// "Microsoft.Authorization/*/Delete").
func patternRE(pattern string) *regexp.Regexp {
	q := regexp.QuoteMeta(pattern)
	return regexp.MustCompile("(?i)^" + strings.ReplaceAll(q, `\*`, ".*") + "$")
}

// Permits reports whether the role assignments grant action: one
// assignment lists it in Actions and not in its own NotActions
// (NotActions subtract from that role's Actions; they are not a deny).
func Permits(roles []Role, action string) bool {
	for _, r := range roles {
		in := false
		for _, a := range r.Actions {
			in = in || patternRE(a).MatchString(action)
		}
		for _, n := range r.NotActions {
			in = in && !patternRE(n).MatchString(action)
		}
		if in {
			return true
		}
	}
	return false
}

var (
	permissionsPath = regexp.MustCompile(`(?i)^/subscriptions/([^/]+)/resourceGroups/([^/]+)/providers/Microsoft\.Authorization/permissions$`)
	aciPath         = regexp.MustCompile(`(?i)^/subscriptions/[^/]+/resourceGroups/[^/]+/providers/Microsoft\.ContainerInstance/containerGroups(/[^/]+)?(/[^/]+)?(/[^/]+)?(/[^/]+)?$`)
	metricsPath     = regexp.MustCompile(`(?i)/providers/Microsoft\.Insights/metrics$`)
)

// fakePollSuffix ends the URLs the SDK's fake pollers poll (azcore's
// internal/pollers/fake): operation status reads, not actions of their
// own.
const fakePollSuffix = "/get/fake/status"

// actionOf is the RBAC action an ACI or Azure Monitor request needs
// ("Azure permissions for Containers", Microsoft.ContainerInstance
// operations; Microsoft.Insights/metrics/read), "" for none.
func actionOf(req *http.Request) string {
	path := strings.TrimSuffix(req.URL.Path, "/")
	if strings.HasSuffix(path, fakePollSuffix) {
		return ""
	}
	if metricsPath.MatchString(path) {
		return "Microsoft.Insights/metrics/read"
	}
	m := aciPath.FindStringSubmatch(path)
	if m == nil {
		return ""
	}
	const cg = "Microsoft.ContainerInstance/containerGroups"
	switch {
	case m[2] == "": // the collection or one group
		switch req.Method {
		case http.MethodGet:
			return cg + "/read"
		case http.MethodPut, http.MethodPatch:
			return cg + "/write"
		case http.MethodDelete:
			return cg + "/delete"
		}
	case m[3] == "" && req.Method == http.MethodPost: // .../{group}/start|stop|restart
		return cg + m[2] + "/action"
	case strings.EqualFold(m[2], "/containers"):
		switch strings.ToLower(m[4]) {
		case "/logs":
			return cg + "/containers/logs/read"
		case "/exec", "/attach":
			return cg + "/containers" + strings.ToLower(m[4]) + "/action"
		}
	}
	return ""
}

// rbac authorises every request against the caller's roles and serves the
// permissions API ("Permissions - List For Resource Group",
// GET .../resourceGroups/{rg}/providers/Microsoft.Authorization/permissions,
// api-version 2022-04-01: one element per role assignment, paged with
// nextLink). A request without the action is refused as ARM refuses it:
// 403 AuthorizationFailed, "The client '…' with object id '…' does not
// have authorization to perform action '…' over scope '…' or the scope is
// invalid. If access was recently granted, please refresh your
// credentials."
type rbac struct {
	f    *Fake
	next policy.Transporter
}

func (t rbac) Do(req *http.Request) (*http.Response, error) {
	if m := permissionsPath.FindStringSubmatch(req.URL.Path); m != nil && req.Method == http.MethodGet {
		t.f.count("ListPermissions")
		return t.permissions(req, m[1], m[2])
	}
	if action := actionOf(req); action != "" && !Permits(t.f.roles(), action) {
		t.f.count("AuthorizationFailed")
		msg := fmt.Sprintf("The client '%s' with object id '%s' does not have authorization to perform action '%s' over scope '%s' or the scope is invalid. If access was recently granted, please refresh your credentials.",
			FakeClientID, FakeClientID, action, req.URL.Path)
		return jsonResponse(req, http.StatusForbidden, "AuthorizationFailed", map[string]any{"error": map[string]string{"code": "AuthorizationFailed", "message": msg}}), nil
	}
	return t.next.Do(req)
}

func (t rbac) permissions(req *http.Request, sub, rg string) (*http.Response, error) {
	if !strings.EqualFold(sub, t.f.opts.SubscriptionID) {
		return jsonResponse(req, http.StatusNotFound, "SubscriptionNotFound", map[string]any{"error": map[string]string{
			"code": "SubscriptionNotFound", "message": fmt.Sprintf("The subscription '%s' could not be found.", sub)}}), nil
	}
	if !strings.EqualFold(rg, t.f.opts.ResourceGroup) {
		return jsonResponse(req, http.StatusNotFound, "ResourceGroupNotFound", map[string]any{"error": map[string]string{
			"code": "ResourceGroupNotFound", "message": fmt.Sprintf("Resource group '%s' could not be found.", rg)}}), nil
	}
	roles := t.f.roles()
	page := 0
	fmt.Sscan(req.URL.Query().Get("page"), &page)
	body := map[string]any{"value": []Role{}}
	if page < len(roles) {
		r := roles[page]
		for _, s := range []*[]string{&r.Actions, &r.NotActions, &r.DataActions, &r.NotDataActions} {
			if *s == nil {
				*s = []string{}
			}
		}
		body["value"] = []Role{r}
	}
	if page+1 < len(roles) {
		u := *req.URL
		q := u.Query()
		q.Set("page", fmt.Sprint(page+1))
		u.RawQuery = q.Encode()
		body["nextLink"] = u.String()
	}
	return jsonResponse(req, http.StatusOK, "", body), nil
}

func jsonResponse(req *http.Request, status int, errorCode string, v any) *http.Response {
	b, _ := json.Marshal(v)
	h := http.Header{"Content-Type": {"application/json; charset=utf-8"}}
	if errorCode != "" {
		h.Set("X-Ms-Error-Code", errorCode)
	}
	return &http.Response{StatusCode: status, Status: fmt.Sprintf("%d %s", status, http.StatusText(status)), Request: req,
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1, Header: h, Body: io.NopCloser(bytes.NewReader(b)), ContentLength: int64(len(b))}
}

func (f *Fake) count(op string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls[op]++
}
