package fakeaws

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// STS speaks awsquery: a form-encoded POST answered in XML.
// AssumeRoleWithWebIdentity is the one call that is not signed (the web
// identity token is the credential), so it is served before the SigV4
// check. Any non-empty token is accepted; the role, token and session
// name seen last are kept for tests.

// WebIdentity returns the role ARN and token of the last
// AssumeRoleWithWebIdentity call.
func (f *Fake) WebIdentity() (role, token, session string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.stsRole, f.stsToken, f.stsSession
}

// AssumedAccessKey is the access key id the fake issues for web identity.
const AssumedAccessKey = "ASIAFAKEWEBIDENTITY1"

func (f *Fake) serveSTS(w http.ResponseWriter, form url.Values) bool {
	if form.Get("Action") != "AssumeRoleWithWebIdentity" {
		return false
	}
	f.count("sts.AssumeRoleWithWebIdentity")
	role, tok := form.Get("RoleArn"), form.Get("WebIdentityToken")
	w.Header().Set("Content-Type", "text/xml")
	if role == "" || tok == "" {
		w.WriteHeader(400)
		fmt.Fprintf(w, `<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type><Code>InvalidIdentityToken</Code><Message>missing token or role</Message></Error><RequestId>fake</RequestId></ErrorResponse>`)
		return true
	}
	f.mu.Lock()
	f.stsRole, f.stsToken, f.stsSession = role, tok, form.Get("RoleSessionName")
	f.mu.Unlock()
	exp := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	fmt.Fprintf(w, `<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <AssumeRoleWithWebIdentityResult>
    <SubjectFromWebIdentityToken>system:serviceaccount:ns:sa</SubjectFromWebIdentityToken>
    <AssumedRoleUser><Arn>%s</Arn><AssumedRoleId>AROAFAKE:%s</AssumedRoleId></AssumedRoleUser>
    <Credentials>
      <AccessKeyId>%s</AccessKeyId>
      <SecretAccessKey>fakeSecretAccessKeyFromWebIdentity</SecretAccessKey>
      <SessionToken>fakeSessionToken</SessionToken>
      <Expiration>%s</Expiration>
    </Credentials>
    <Audience>sts.amazonaws.com</Audience>
  </AssumeRoleWithWebIdentityResult>
  <ResponseMetadata><RequestId>fake</RequestId></ResponseMetadata>
</AssumeRoleWithWebIdentityResponse>`, assumedRoleArn(role, form.Get("RoleSessionName")),
		form.Get("RoleSessionName"), AssumedAccessKey, exp)
	return true
}

// assumedRoleArn is the session ARN STS gives a role's session: service
// sts, the role's name without its path ("arn:aws:sts::123456789012:
// assumed-role/demo/TestAR", STS API reference, AssumeRole's
// AssumedRoleUser).
func assumedRoleArn(role, session string) string {
	parts := strings.SplitN(role, ":", 6)
	if len(parts) != 6 {
		return role
	}
	return "arn:" + parts[1] + ":sts::" + parts[4] + ":assumed-role/" + parts[5][strings.LastIndex(parts[5], "/")+1:] + "/" + session
}
