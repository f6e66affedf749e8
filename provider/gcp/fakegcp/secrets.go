package fakegcp

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"cloud.google.com/go/iam/apiv1/iampb"
	"cloud.google.com/go/run/apiv2/runpb"
	"cloud.google.com/go/secretmanager/apiv1/secretmanagerpb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

type secret struct {
	s        *secretmanagerpb.Secret
	versions [][]byte
	policy   *iampb.Policy
	// state of version n (1-based) when not ENABLED (SetVersionState).
	state map[int]secretmanagerpb.SecretVersion_State
}

// ReadConfig returns the value of env var key as the serving revision's
// container sees it, resolving Secret Manager references.
func (f *Server) ReadConfig(name, key string) (string, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var s *service
	for _, x := range f.services {
		if shortName(x.svc.Name) == name {
			s = x
		}
	}
	if s == nil || s.instRev == "" {
		return "", false, fmt.Errorf("service %s runs no revision", name)
	}
	r := s.revs[s.instRev]
	for _, c := range r.rev.Containers {
		for _, e := range c.Env {
			if e.Name != key {
				continue
			}
			if ref := e.GetValueSource().GetSecretKeyRef(); ref != nil {
				v, err := f.accessLocked(ref.Secret, ref.Version)
				return string(v), err == nil, err
			}
			return e.GetValue(), true, nil
		}
	}
	return "", false, nil
}

// secretDeniedLocked returns why rev cannot start when its service
// account may not read a secret its env refers to, else "". Cloud Run
// resolves secretKeyRef as the revision's service account and fails the
// revision without roles/secretmanager.secretAccessor on the secret or
// the project (cloud.google.com/run/docs/configuring/services/secrets,
// "Grant the service identity access to the secret"; the message follows
// the one Cloud Run reports).
func (f *Server) secretDeniedLocked(rev *runpb.Revision) string {
	sa := rev.ServiceAccount
	if sa == "" {
		sa = f.DefaultServiceAccount
	}
	member := "serviceAccount:" + sa
	if slices.Contains(f.ProjectSecretAccessors, member) {
		return ""
	}
	for _, c := range rev.Containers {
		for _, e := range c.Env {
			ref := e.GetValueSource().GetSecretKeyRef()
			if ref == nil {
				continue
			}
			s := f.findSecretLocked(ref.Secret)
			if s == nil || !s.grants(member) {
				return fmt.Sprintf("spec.template.spec.containers[0].env.valueFrom.secretKeyRef.name: Permission denied on secret: %s/versions/%s for Revision service account %s. The service account used must be granted the 'Secret Manager Secret Accessor' role (roles/secretmanager.secretAccessor) at the secret, project or higher level.", ref.Secret, ref.Version, sa)
			}
		}
	}
	return ""
}

// grants reports whether the secret's policy gives member the accessor role.
func (s *secret) grants(member string) bool {
	for _, b := range s.policy.GetBindings() {
		if (b.Role == "roles/secretmanager.secretAccessor" || b.Role == "roles/owner") && slices.Contains(b.Members, member) {
			return true
		}
	}
	return false
}

// findSecretLocked finds a secret by full name or bare id.
func (f *Server) findSecretLocked(name string) *secret {
	if s, ok := f.secrets[name]; ok {
		return s
	}
	for n, x := range f.secrets {
		if shortName(n) == name {
			return x
		}
	}
	return nil
}

type secretManager struct {
	secretmanagerpb.UnimplementedSecretManagerServiceServer
	f *Server
}

var reSecretID = regexp.MustCompile(`^[A-Za-z0-9_-]{1,255}$`)

func (m *secretManager) CreateSecret(_ context.Context, req *secretmanagerpb.CreateSecretRequest) (*secretmanagerpb.Secret, error) {
	f := m.f
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.enter("CreateSecret"); err != nil {
		return nil, err
	}
	if !reSecretID.MatchString(req.SecretId) {
		return nil, status.Errorf(codes.InvalidArgument, "secret_id %q: letters, digits, '_' and '-' only, at most 255", req.SecretId)
	}
	if req.GetSecret().GetReplication() == nil {
		return nil, status.Error(codes.InvalidArgument, "secret.replication is required")
	}
	name := req.Parent + "/secrets/" + req.SecretId
	if _, dup := f.secrets[name]; dup {
		return nil, status.Errorf(codes.AlreadyExists, "Secret [%s] already exists.", name)
	}
	s := proto.Clone(req.Secret).(*secretmanagerpb.Secret)
	s.Name, s.CreateTime = name, timestamppb.Now()
	f.secrets[name] = &secret{s: s}
	return proto.Clone(s).(*secretmanagerpb.Secret), nil
}

func (m *secretManager) GetSecret(_ context.Context, req *secretmanagerpb.GetSecretRequest) (*secretmanagerpb.Secret, error) {
	f := m.f
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.enter("GetSecret"); err != nil {
		return nil, err
	}
	s, ok := f.secrets[req.Name]
	if !ok {
		return nil, status.Errorf(codes.NotFound, "Secret [%s] not found or has no versions.", req.Name)
	}
	return proto.Clone(s.s).(*secretmanagerpb.Secret), nil
}

func (m *secretManager) AddSecretVersion(_ context.Context, req *secretmanagerpb.AddSecretVersionRequest) (*secretmanagerpb.SecretVersion, error) {
	f := m.f
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.enter("AddSecretVersion"); err != nil {
		return nil, err
	}
	s, ok := f.secrets[req.Parent]
	if !ok {
		return nil, status.Errorf(codes.NotFound, "Secret [%s] not found.", req.Parent)
	}
	s.versions = append(s.versions, append([]byte(nil), req.GetPayload().GetData()...))
	return &secretmanagerpb.SecretVersion{Name: fmt.Sprintf("%s/versions/%d", req.Parent, len(s.versions)),
		CreateTime: timestamppb.Now(), State: secretmanagerpb.SecretVersion_ENABLED}, nil
}

func (m *secretManager) AccessSecretVersion(_ context.Context, req *secretmanagerpb.AccessSecretVersionRequest) (*secretmanagerpb.AccessSecretVersionResponse, error) {
	f := m.f
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.enter("AccessSecretVersion"); err != nil {
		return nil, err
	}
	i := strings.LastIndex(req.Name, "/versions/")
	if i < 0 {
		return nil, status.Errorf(codes.InvalidArgument, "name %q: want projects/*/secrets/*/versions/*", req.Name)
	}
	secretName, version := req.Name[:i], req.Name[i+len("/versions/"):]
	v, err := f.accessLocked(secretName, version)
	if err != nil {
		return nil, err
	}
	n := version
	if version == "latest" {
		n = strconv.Itoa(len(f.secrets[secretName].versions))
	}
	return &secretmanagerpb.AccessSecretVersionResponse{Name: secretName + "/versions/" + n, Payload: &secretmanagerpb.SecretPayload{Data: v}}, nil
}

// GetSecretVersion returns a version's metadata, never its payload
// (google/cloud/secretmanager/v1/service.proto: "Gets metadata for a
// SecretVersion. projects/*/secrets/*/versions/latest is an alias to the
// most recently created SecretVersion"). The alias resolves to the newest
// version whatever its state, and the answer names it by number. A
// missing secret or version is NOT_FOUND.
func (m *secretManager) GetSecretVersion(_ context.Context, req *secretmanagerpb.GetSecretVersionRequest) (*secretmanagerpb.SecretVersion, error) {
	f := m.f
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.enter("GetSecretVersion"); err != nil {
		return nil, err
	}
	i := strings.LastIndex(req.Name, "/versions/")
	if i < 0 {
		return nil, status.Errorf(codes.InvalidArgument, "name %q: want projects/*/secrets/*/versions/*", req.Name)
	}
	secretName, version := req.Name[:i], req.Name[i+len("/versions/"):]
	s, ok := f.secrets[secretName]
	if !ok {
		return nil, status.Errorf(codes.NotFound, "Secret [%s] not found or has no versions.", secretName)
	}
	n, err := s.versionNumber(secretName, version)
	if err != nil {
		return nil, err
	}
	return &secretmanagerpb.SecretVersion{Name: fmt.Sprintf("%s/versions/%d", secretName, n), CreateTime: s.s.GetCreateTime(), State: s.versionState(n)}, nil
}

// versionNumber resolves version ("latest" or a number) of the secret
// named secretName to a version number that exists.
func (s *secret) versionNumber(secretName, version string) (int, error) {
	n := len(s.versions)
	if version != "latest" {
		var err error
		if n, err = strconv.Atoi(version); err != nil {
			return 0, status.Errorf(codes.InvalidArgument, "version %q", version)
		}
	}
	if n < 1 || n > len(s.versions) {
		return 0, status.Errorf(codes.NotFound, "Secret Version [%s/versions/%s] not found.", secretName, version)
	}
	return n, nil
}

func (s *secret) versionState(n int) secretmanagerpb.SecretVersion_State {
	if st, ok := s.state[n]; ok {
		return st
	}
	return secretmanagerpb.SecretVersion_ENABLED
}

// SetVersionState puts version n of secret name (projects/<p>/secrets/<id>)
// in state, as DisableSecretVersion or DestroySecretVersion would.
func (f *Server) SetVersionState(name string, n int, state secretmanagerpb.SecretVersion_State) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := f.secrets[name]
	if s.state == nil {
		s.state = map[int]secretmanagerpb.SecretVersion_State{}
	}
	s.state[n] = state
}

// AddSecret stores a secret with one version holding value, as a user
// would create it outside alphaswarm; name is projects/<p>/secrets/<id>.
func (f *Server) AddSecret(name string, value []byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.secrets[name] = &secret{s: &secretmanagerpb.Secret{Name: name, CreateTime: timestamppb.Now()}, versions: [][]byte{value}}
}

// AddVersion adds a version holding value to secret name
// (projects/<p>/secrets/<id>), as AddSecretVersion does.
func (f *Server) AddVersion(name string, value []byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := f.secrets[name]
	s.versions = append(s.versions, append([]byte(nil), value...))
}

// GetIamPolicy returns the secret's policy (empty with an etag when none
// was set), as google.iam.v1.IAMPolicy.GetIamPolicy does.
func (m *secretManager) GetIamPolicy(_ context.Context, req *iampb.GetIamPolicyRequest) (*iampb.Policy, error) {
	f := m.f
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.enter("GetIamPolicy"); err != nil {
		return nil, err
	}
	s, ok := f.secrets[req.Resource]
	if !ok {
		return nil, status.Errorf(codes.NotFound, "Secret [%s] not found.", req.Resource)
	}
	if s.policy == nil {
		s.policy = &iampb.Policy{Version: 1, Etag: []byte(randHex(4))}
	}
	return proto.Clone(s.policy).(*iampb.Policy), nil
}

// SetIamPolicy replaces the secret's policy. A policy carrying an etag
// that no longer matches is ABORTED (google/iam/v1/policy.proto,
// Policy.etag: "If no etag is provided ... the existing policy is
// overwritten"; a stale one fails the call).
func (m *secretManager) SetIamPolicy(_ context.Context, req *iampb.SetIamPolicyRequest) (*iampb.Policy, error) {
	f := m.f
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.enter("SetIamPolicy"); err != nil {
		return nil, err
	}
	s, ok := f.secrets[req.Resource]
	if !ok {
		return nil, status.Errorf(codes.NotFound, "Secret [%s] not found.", req.Resource)
	}
	if req.Policy == nil {
		return nil, status.Error(codes.InvalidArgument, "policy is required")
	}
	if len(req.Policy.Etag) > 0 && s.policy != nil && string(req.Policy.Etag) != string(s.policy.Etag) {
		return nil, status.Error(codes.Aborted, "There were concurrent policy changes. Please retry the whole read-modify-write with exponential backoff.")
	}
	p := proto.Clone(req.Policy).(*iampb.Policy)
	p.Etag = []byte(randHex(4))
	s.policy = p
	return proto.Clone(p).(*iampb.Policy), nil
}

// accessLocked resolves a secret version; secret may be a full name or a
// bare id (then any project matches, as Cloud Run resolves it in the
// service's project).
func (f *Server) accessLocked(secretName, version string) ([]byte, error) {
	s, ok := f.secrets[secretName]
	if !ok {
		for n, x := range f.secrets {
			if shortName(n) == secretName {
				s, ok = x, true
			}
		}
	}
	if !ok {
		return nil, status.Errorf(codes.NotFound, "Secret [%s] not found or has no versions.", secretName)
	}
	n, err := s.versionNumber(secretName, version)
	if err != nil {
		return nil, err
	}
	// A version that is not ENABLED cannot be accessed, "latest"
	// included when the newest version is the disabled one:
	// FAILED_PRECONDITION "Secret Version [.../versions/3] is in DISABLED
	// state." (the answer reported in external-secrets/external-secrets#4042
	// and google-github-actions/get-secretmanager-secrets#268; the
	// SecretVersion.State comment: DISABLED "may not be accessed").
	if st := s.versionState(n); st != secretmanagerpb.SecretVersion_ENABLED {
		return nil, status.Errorf(codes.FailedPrecondition, "Secret Version [%s/versions/%d] is in %s state.", secretName, n, st)
	}
	return s.versions[n-1], nil
}
