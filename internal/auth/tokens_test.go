package auth

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alphaswarm/controller/control"
	"github.com/alphaswarm/controller/workload"
)

// TestdataToken is the token whose hash is the first entry of
// testdata/store_v1.json (a fixture, not a secret).
const TestdataToken = "asw_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8"

func newStore(t *testing.T) *TokenStore {
	t.Helper()
	s, err := OpenTokenStore(filepath.Join(t.TempDir(), "auth", "tokens.json"))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// copyTestdata copies testdata/name into a fresh directory as tokens.json.
func copyTestdata(t *testing.T, name string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "tokens.json")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func mode(t *testing.T, path string) os.FileMode {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

func TestTokenCreateAuthenticateRevoke(t *testing.T) {
	s := newStore(t)
	for _, role := range Roles {
		user := "user-" + string(role)
		tok, info, err := s.Create(user, role, 0)
		wantCode(t, err, "")
		if !strings.HasPrefix(tok, TokenPrefix) || len(tok) != 4+43 {
			t.Fatalf("token has the wrong shape (len %d)", len(tok))
		}
		if info.ID == "" || info.User != user || info.Role != role || info.Created.IsZero() || !info.Expires.IsZero() {
			t.Fatalf("info = %+v", info)
		}
		p, err := s.Authenticate(tok)
		wantCode(t, err, "")
		if want := (control.Principal{User: user, Name: user, Auth: "token:" + info.ID, Role: string(role)}); !principalIs(p, want) {
			t.Fatalf("principal %+v; want %+v", p, want)
		}
		wantCode(t, s.Revoke(info.ID), "")
		_, err = s.Authenticate(tok)
		wantCode(t, err, workload.Unauthenticated)
		noSecret(t, err.Error(), tok)
		wantCode(t, s.Revoke(info.ID), workload.NotFound)
	}
	wantCode(t, s.Revoke(""), workload.NotFound)
	wantCode(t, s.Revoke("nope"), workload.NotFound)
}

func TestTokenCreateValidation(t *testing.T) {
	s := newStore(t)
	tests := []struct {
		name   string
		user   string
		role   Role
		ttl    time.Duration
		fields []string
	}{
		{"ok", "alice.example-1_x", RoleViewer, time.Hour, nil},
		// Issue 21.1: a local name cannot look like another method's.
		{"oidc form", "oidc:https://idp.example#alice", RoleAdmin, 0, []string{"user"}},
		{"colon", "a:b", RoleAdmin, 0, []string{"user"}},
		{"email form", "alice@example.com", RoleViewer, time.Hour, []string{"user"}},
		{"ok unicode", "zoë", RoleOperator, 0, nil},
		{"ok 128 bytes", strings.Repeat("a", 128), RoleAdmin, 0, nil},
		{"empty user", "", RoleViewer, 0, []string{"user"}},
		{"space", "alice smith", RoleViewer, 0, []string{"user"}},
		{"tab", "alice\tsmith", RoleViewer, 0, []string{"user"}},
		{"nbsp", "alice\u00a0smith", RoleViewer, 0, []string{"user"}},
		{"control", "alice\x00", RoleViewer, 0, []string{"user"}},
		{"newline", "alice\n", RoleViewer, 0, []string{"user"}},
		{"invalid utf8", "alice\xff", RoleViewer, 0, []string{"user"}},
		{"too long", strings.Repeat("a", 129), RoleViewer, 0, []string{"user"}},
		{"unknown role", "bob", "root", 0, []string{"role"}},
		{"empty role", "bob", "", 0, []string{"role"}},
		{"negative ttl", "bob", RoleViewer, -time.Second, []string{"ttl"}},
		{"all bad", "", "x", -1, []string{"user", "role", "ttl"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok, _, err := s.Create(tt.user, tt.role, tt.ttl)
			if tt.fields == nil {
				wantCode(t, err, "")
				return
			}
			wantCode(t, err, workload.InvalidArgument)
			if tok != "" {
				t.Fatal("token returned with an error")
			}
			var got []string
			for _, f := range workload.AsError(err).Fields {
				got = append(got, f.Path)
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.fields) {
				t.Fatalf("fields %v; want %v", got, tt.fields)
			}
		})
	}
	if err := ValidateUser("ok"); err != nil {
		t.Fatal(err)
	}
	wantCode(t, ValidateUser("no way"), workload.InvalidArgument)
}

func TestTokenAuthenticateMalformed(t *testing.T) {
	s := newStore(t)
	tok, _, err := s.Create("alice", RoleAdmin, 0)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct{ name, token string }{
		{"empty", ""},
		{"prefix only", TokenPrefix},
		{"no prefix", strings.TrimPrefix(tok, TokenPrefix)},
		{"other prefix", "ghp_" + strings.TrimPrefix(tok, TokenPrefix)},
		{"truncated", tok[:len(tok)-1]},
		{"extended", tok + "A"},
		{"not base64url", TokenPrefix + strings.Repeat("!", 43)},
		{"padded", tok[:len(tok)-1] + "="},
		{"unknown", TokenPrefix + strings.Repeat("A", 43)},
		{"one char changed", tok[:len(tok)-2] + flip(tok[len(tok)-2]) + tok[len(tok)-1:]},
		{"testdata token", TestdataToken},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := s.Authenticate(tt.token)
			wantCode(t, err, workload.Unauthenticated)
			noSecret(t, err.Error(), tt.token)
			noSecret(t, err.Error(), tok)
		})
	}
}

func flip(c byte) string {
	if c == 'A' {
		return "B"
	}
	return "A"
}

func TestTokenExpiry(t *testing.T) {
	s := newStore(t)
	now := time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)
	s.now = func() time.Time { return now }
	tok, info, err := s.Create("temp", RoleOperator, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if !info.Expires.Equal(now.Add(time.Hour)) {
		t.Fatalf("expires %v; want %v", info.Expires, now.Add(time.Hour))
	}
	tests := []struct {
		at   time.Duration
		code workload.Code
	}{
		{0, ""},
		{59 * time.Minute, ""},
		{time.Hour, workload.Unauthenticated},
		{2 * time.Hour, workload.Unauthenticated},
	}
	for _, tt := range tests {
		now = info.Created.Add(tt.at)
		_, err := s.Authenticate(tok)
		wantCode(t, err, tt.code)
		if err != nil && !strings.Contains(err.Error(), "expired") {
			t.Fatalf("error %q does not say expired", err)
		}
	}
	// Expired tokens stay listed (so an admin can see and revoke them).
	if l := s.List(); len(l) != 1 || !l[0].Expired(now) {
		t.Fatalf("List = %+v", l)
	}
}

func TestTokenListHasNoSecrets(t *testing.T) {
	s := newStore(t)
	var toks []string
	for i := range 3 {
		tok, _, err := s.Create(fmt.Sprintf("u%d", i), RoleViewer, time.Duration(i)*time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		toks = append(toks, tok)
	}
	l := s.List()
	if len(l) != 3 {
		t.Fatalf("List has %d entries", len(l))
	}
	for i := 1; i < len(l); i++ {
		if l[i].Created.Before(l[i-1].Created) {
			t.Fatal("List is not oldest first")
		}
	}
	b, err := json.Marshal(l)
	if err != nil {
		t.Fatal(err)
	}
	file, err := os.ReadFile(s.Path())
	if err != nil {
		t.Fatal(err)
	}
	var sf storeFile
	if err := json.Unmarshal(file, &sf); err != nil {
		t.Fatal(err)
	}
	for _, st := range sf.Tokens {
		if len(st.SHA256) != 64 {
			t.Fatalf("stored hash %q", st.SHA256)
		}
		if strings.Contains(string(b), st.SHA256) || strings.Contains(string(b), st.SHA256[:16]) {
			t.Fatal("List exposes a hash")
		}
	}
	if strings.Contains(string(b), "sha256") || strings.Contains(string(b), "hash") {
		t.Fatalf("List JSON mentions a hash: %s", b)
	}
	for _, tok := range toks {
		noSecret(t, string(b), tok)
		noSecret(t, string(file), tok) // the store file never holds a plaintext token
	}
}

func TestTokenFileMode(t *testing.T) {
	s := newStore(t)
	if m := mode(t, s.Path()); m != 0o600 {
		t.Fatalf("new store mode %#o", m)
	}
	if _, _, err := s.Create("alice", RoleViewer, 0); err != nil {
		t.Fatal(err)
	}
	if m := mode(t, s.Path()); m != 0o600 {
		t.Fatalf("mode after write %#o", m)
	}
	if m := mode(t, filepath.Dir(s.Path())); m != 0o700 {
		t.Fatalf("created directory mode %#o", m)
	}

	tests := []struct {
		mode os.FileMode
		code workload.Code // "" = opened
	}{
		{0o600, ""},
		{0o400, ""},
		{0o640, workload.Internal},
		{0o644, workload.Internal},
		{0o604, workload.Internal},
		{0o620, workload.Internal},
		{0o602, workload.Internal},
		{0o666, workload.Internal},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%#o", tt.mode), func(t *testing.T) {
			path := copyTestdata(t, "store_v1.json")
			if err := os.Chmod(path, tt.mode); err != nil {
				t.Fatal(err)
			}
			s, err := OpenTokenStore(path)
			wantCode(t, err, tt.code)
			if err != nil {
				if !strings.Contains(err.Error(), "writable") && !strings.Contains(err.Error(), "readable") {
					t.Fatalf("error %q does not say why", err)
				}
				return
			}
			if mode(t, path) != tt.mode {
				t.Fatalf("mode %#o changed to %#o", tt.mode, mode(t, path))
			}
			if _, err := s.Authenticate(TestdataToken); err != nil {
				t.Fatal(err)
			}
		})
	}

	// A file made group-writable after opening is refused (fail closed).
	if err := os.Chmod(s.Path(), 0o660); err != nil {
		t.Fatal(err)
	}
	touch(t, s.Path())
	_, err := s.Authenticate(TestdataToken)
	wantCode(t, err, workload.Internal)
}

// TestChmodAloneIsNoticed: making the store world-readable, without any
// change to its content or mtime, stops it from being used at the next
// request; restoring 0600 restores service.
func TestChmodAloneIsNoticed(t *testing.T) {
	path := copyTestdata(t, "store_v1.json")
	s, err := OpenTokenStore(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Authenticate(TestdataToken); err != nil {
		t.Fatal(err)
	}
	fi, _ := os.Stat(path)
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(path, fi.ModTime(), fi.ModTime()); err != nil {
		t.Fatal(err)
	}
	_, err = s.Authenticate(TestdataToken)
	wantCode(t, err, workload.Internal)
	if err == nil || !strings.Contains(err.Error(), "readable by group or others") {
		t.Fatalf("err = %v, want it to say the file is readable by others", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Authenticate(TestdataToken); err != nil {
		t.Fatalf("after chmod 600: %v", err)
	}
}

// TestStoreKeysExact: a store file with a key in the wrong case or twice
// is refused, not read with the last one winning.
func TestStoreKeysExact(t *testing.T) {
	for name, body := range map[string]string{
		"case":      `{"version":1,"Tokens":[]}`,
		"duplicate": `{"version":1,"tokens":[],"tokens":[]}`,
	} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "tokens.json")
			if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := OpenTokenStore(path)
			wantCode(t, err, workload.Internal)
		})
	}
}

// TestReadAdminTokenMode: the admin token file is refused when group or
// others may read it.
func TestReadAdminTokenMode(t *testing.T) {
	path := filepath.Join(t.TempDir(), AdminTokenFileName)
	if err := os.WriteFile(path, []byte("asw_x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if tok, err := ReadAdminToken(path); err != nil || tok != "asw_x" {
		t.Fatalf("ReadAdminToken = %q, %v", tok, err)
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if tok, err := ReadAdminToken(path); err == nil || tok != "" || !strings.Contains(err.Error(), "readable by group or others") {
		t.Fatalf("ReadAdminToken of a 0644 file = %q, %v; want a refusal", tok, err)
	}
}

// touch bumps path's mtime so that stores re-read it.
func touch(t *testing.T, path string) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	next := fi.ModTime().Add(time.Second)
	if err := os.Chtimes(path, next, next); err != nil {
		t.Fatal(err)
	}
}

func TestTokenStoreTestdata(t *testing.T) {
	s, err := OpenTokenStore(copyTestdata(t, "store_v1.json"))
	if err != nil {
		t.Fatal(err)
	}
	p, err := s.Authenticate(TestdataToken)
	wantCode(t, err, "")
	if !principalIs(p, control.Principal{User: "ci-bot", Name: "ci-bot", Role: "operator"}) {
		t.Fatalf("principal %+v", p)
	}
	l := s.List()
	if len(l) != 2 || l[0].ID != "fedcba9876543210" || l[1].ID != "0123456789abcdef" {
		t.Fatalf("List = %+v", l)
	}

	for _, name := range []string{
		"bad_version.json", "bad_hash.json", "bad_role.json", "bad_user.json",
		"dup_id.json", "dup_hash.json", "unknown_field.json", "no_id.json", "not_json.json",
	} {
		t.Run(name, func(t *testing.T) {
			_, err := OpenTokenStore(copyTestdata(t, name))
			wantCode(t, err, workload.Internal)
		})
	}
}

func TestTokenStoreFailsClosed(t *testing.T) {
	s := newStore(t)
	tok, _, err := s.Create("alice", RoleAdmin, 0)
	if err != nil {
		t.Fatal(err)
	}
	// A corrupt file: authentication fails (Internal), List keeps the last
	// good content.
	if err := os.WriteFile(s.Path(), []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	touch(t, s.Path())
	_, err = s.Authenticate(tok)
	wantCode(t, err, workload.Internal)
	noSecret(t, err.Error(), tok)
	if len(s.List()) != 1 {
		t.Fatal("List lost the last good content")
	}
	_, _, err = s.Create("bob", RoleViewer, 0)
	wantCode(t, err, workload.Internal)

	// A deleted file: every token is gone; the next write recreates it.
	if err := os.Remove(s.Path()); err != nil {
		t.Fatal(err)
	}
	_, err = s.Authenticate(tok)
	wantCode(t, err, workload.Unauthenticated)
	if len(s.List()) != 0 {
		t.Fatal("List of a deleted store is not empty")
	}
	tok2, _, err := s.Create("bob", RoleViewer, 0)
	wantCode(t, err, "")
	if _, err := s.Authenticate(tok2); err != nil {
		t.Fatal(err)
	}
	if m := mode(t, s.Path()); m != 0o600 {
		t.Fatalf("recreated mode %#o", m)
	}
}

func TestTokenStoreReload(t *testing.T) {
	a := newStore(t)
	b, err := OpenTokenStore(a.Path())
	if err != nil {
		t.Fatal(err)
	}
	tok, info, err := a.Create("alice", RoleOperator, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Authenticate(tok); err != nil {
		t.Fatalf("b does not see a's token: %v", err)
	}
	if l := b.List(); len(l) != 1 || l[0] != info {
		t.Fatalf("b.List = %+v; want [%+v]", l, info)
	}
	if err := b.Revoke(info.ID); err != nil {
		t.Fatal(err)
	}
	_, err = a.Authenticate(tok)
	wantCode(t, err, workload.Unauthenticated)
	if len(a.List()) != 0 {
		t.Fatal("a still lists the revoked token")
	}
}

func TestTokenConcurrentCreates(t *testing.T) {
	a := newStore(t)
	b, err := OpenTokenStore(a.Path())
	if err != nil {
		t.Fatal(err)
	}
	const workers, each = 8, 5
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		toks = map[string]string{} // token → user
	)
	for w := range workers {
		s := a
		if w%2 == 1 {
			s = b
		}
		wg.Go(func() {
			for i := range each {
				user := fmt.Sprintf("w%d-%d", w, i)
				tok, _, err := s.Create(user, RoleViewer, 0)
				if err != nil {
					t.Error(err)
					return
				}
				// Reads race with other writers.
				if _, err := s.Authenticate(tok); err != nil {
					t.Error(err)
				}
				_ = s.List()
				mu.Lock()
				toks[tok] = user
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	c, err := OpenTokenStore(a.Path())
	if err != nil {
		t.Fatal(err)
	}
	if n := len(c.List()); n != workers*each {
		t.Fatalf("%d tokens stored; want %d (lost updates)", n, workers*each)
	}
	for tok, user := range toks {
		p, err := c.Authenticate(tok)
		if err != nil || p.User != user {
			t.Fatalf("token of %s: %+v, %v", user, p, err)
		}
	}
	// No temporary files are left behind.
	entries, err := os.ReadDir(filepath.Dir(a.Path()))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if strings.Contains(e.Name(), ".tmp-") {
			t.Fatalf("temporary file %s left behind", e.Name())
		}
	}
}

func TestEnsureAdmin(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tokens.json")
	file := AdminTokenFile(path)
	if file != filepath.Join(filepath.Dir(path), "admin.token") {
		t.Fatalf("AdminTokenFile = %s", file)
	}

	tok, created, err := EnsureAdmin(path)
	wantCode(t, err, "")
	if !created || !strings.HasPrefix(tok, TokenPrefix) {
		t.Fatalf("first EnsureAdmin: created=%v", created)
	}
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if string(data) != tok+"\n" {
		t.Fatal("admin.token does not hold the returned token")
	}
	if m := mode(t, file); m != 0o600 {
		t.Fatalf("admin.token mode %#o", m)
	}
	s, err := OpenTokenStore(path)
	if err != nil {
		t.Fatal(err)
	}
	p, err := s.Authenticate(tok)
	if err != nil || !principalIs(p, control.Principal{User: AdminUser, Name: AdminUser, Role: "admin"}) {
		t.Fatalf("admin token: %+v, %v", p, err)
	}
	store, _ := os.ReadFile(path)
	noSecret(t, string(store), tok)

	// Second start: nothing created, file untouched.
	tok2, created, err := EnsureAdmin(path)
	if err != nil || created || tok2 != "" {
		t.Fatalf("second EnsureAdmin: %q, %v, %v", tok2, created, err)
	}
	if len(s.List()) != 1 {
		t.Fatal("second EnsureAdmin added a token")
	}

	// Another admin token counts; a non-admin one does not.
	info := s.List()[0]
	if err := s.Revoke(info.ID); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Create("ops", RoleOperator, 0); err != nil {
		t.Fatal(err)
	}
	tok3, created, err := s.EnsureAdmin()
	if err != nil || !created || tok3 == tok {
		t.Fatalf("EnsureAdmin after revoke: created=%v, %v", created, err)
	}
	if data, _ := os.ReadFile(file); string(data) != tok3+"\n" {
		t.Fatal("admin.token not replaced")
	}

	// An expired admin token does not count.
	s2 := newStore(t)
	now := time.Now()
	s2.now = func() time.Time { return now }
	if _, _, err := s2.Create("root", RoleAdmin, time.Minute); err != nil {
		t.Fatal(err)
	}
	if _, created, _ := s2.EnsureAdmin(); created {
		t.Fatal("EnsureAdmin created a token while an admin token is valid")
	}
	now = now.Add(time.Hour)
	if _, created, err := s2.EnsureAdmin(); err != nil || !created {
		t.Fatalf("EnsureAdmin with only an expired admin: created=%v, %v", created, err)
	}
}

func TestEnsureAdminConcurrent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tokens.json")
	var wg sync.WaitGroup
	var mu sync.Mutex
	var made []string
	for range 6 {
		wg.Go(func() {
			tok, created, err := EnsureAdmin(path)
			if err != nil {
				t.Error(err)
				return
			}
			if created {
				mu.Lock()
				made = append(made, tok)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(made) != 1 {
		t.Fatalf("%d admin tokens created; want 1", len(made))
	}
	data, _ := os.ReadFile(AdminTokenFile(path))
	if string(data) != made[0]+"\n" {
		t.Fatal("admin.token does not hold the created token")
	}
}

func TestEnsureAdminWriteFails(t *testing.T) {
	boom := errors.New("disk full")
	for _, failing := range []string{"admin.token", "tokens.json"} {
		t.Run(failing, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "tokens.json")
			s, err := OpenTokenStore(path)
			if err != nil {
				t.Fatal(err)
			}
			writeFile = func(p string, data []byte) error {
				if filepath.Base(p) == failing {
					return boom
				}
				return writeFileAtomic(p, data)
			}
			defer func() { writeFile = writeFileAtomic }()
			tok, created, err := s.EnsureAdmin()
			wantCode(t, err, workload.Internal)
			if !errors.Is(err, boom) || created || tok != "" {
				t.Fatalf("EnsureAdmin = %q, %v, %v", tok, created, err)
			}
			// Neither a readable token without a stored hash, nor a stored
			// admin token nobody can read.
			if _, err := os.Stat(AdminTokenFile(path)); !os.IsNotExist(err) {
				t.Fatal("admin.token left behind")
			}
			writeFile = writeFileAtomic
			if len(s.List()) != 0 {
				t.Fatal("admin token stored despite the error")
			}
			if _, created, err := s.EnsureAdmin(); err != nil || !created {
				t.Fatalf("retry: created=%v, %v", created, err)
			}
		})
	}
}
