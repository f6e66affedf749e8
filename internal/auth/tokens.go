package auth

import (
	"cmp"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/alphaswarm/controller/control"
	"github.com/alphaswarm/controller/workload"
)

// TokenPrefix starts every bearer token this package issues, so that the
// tokens are recognisable to leaked-secret scanners and to Authenticator.
const TokenPrefix = "asw_"

// tokenBytes is the entropy of a token: 32 random bytes (256 bits).
const tokenBytes = 32

// tokenLen is the length of a well-formed token: prefix + unpadded base64url.
var tokenLen = len(TokenPrefix) + base64.RawURLEncoding.EncodedLen(tokenBytes)

// AdminUser is the user of the admin token EnsureAdmin creates.
const AdminUser = "admin"

// AdminTokenFileName is the file, next to the store, that EnsureAdmin writes
// the first admin token to.
const AdminTokenFileName = "admin.token"

const (
	storeVersion = 1
	storeMode    = 0o600
	maxStoreSize = 16 << 20
)

// TokenInfo describes a bearer token: never its value, never its hash.
type TokenInfo struct {
	ID      string    `json:"id"`
	User    string    `json:"user"`
	Role    Role      `json:"role"`
	Created time.Time `json:"created"`
	// Expires is zero for a token that does not expire.
	Expires time.Time `json:"expires,omitzero"`
}

// Expired reports whether the token has expired at now.
func (t TokenInfo) Expired(now time.Time) bool {
	return !t.Expires.IsZero() && !now.Before(t.Expires)
}

// storedToken is one entry of the store file.
type storedToken struct {
	TokenInfo
	// SHA256 is the hex SHA-256 of the whole token string, prefix included.
	SHA256 string `json:"sha256"`
}

// storeFile is the store file's content.
type storeFile struct {
	Version int           `json:"version"`
	Tokens  []storedToken `json:"tokens"`
}

// tokenSet is an immutable snapshot of the store file.
type tokenSet struct {
	stamp  os.FileInfo // the file it was read from; nil when it was missing
	tokens []storedToken
	byHash map[[sha256.Size]byte]*storedToken
}

// current reports whether the snapshot still reflects the file described by
// fi/err (the result of os.Stat). Writers replace the file by rename, so a
// change shows as a different file; an in-place edit shows as a different
// mtime or size, and a chmod as a different mode (which the re-read then
// checks).
func (ts *tokenSet) current(fi os.FileInfo, err error) bool {
	if err != nil {
		return ts.stamp == nil && errors.Is(err, fs.ErrNotExist)
	}
	return ts.stamp != nil && os.SameFile(ts.stamp, fi) &&
		ts.stamp.ModTime().Equal(fi.ModTime()) && ts.stamp.Size() == fi.Size() &&
		ts.stamp.Mode() == fi.Mode() // a chmod alone changes no mtime
}

// TokenStore is the file-backed store of bearer tokens. The file holds only
// SHA-256 hashes of the tokens. It is safe for concurrent use, and changes
// made by another TokenStore on the same file (in this process or another)
// are seen on the next call: every call checks the file's identity, mtime
// and size and re-reads it when they change.
//
// Changes are read-modify-write under an in-process mutex and, on Unix, an
// advisory lock on "<path>.lock", so concurrent writers never lose each
// other's changes. Each write replaces the file atomically (temporary file,
// fsync, rename, fsync of the directory).
type TokenStore struct {
	path string
	now  func() time.Time

	mu  sync.Mutex // serialises reloads and writes
	cur atomic.Pointer[tokenSet]
}

// OpenTokenStore opens the store at path, creating it (and its directory,
// 0700) when missing. The file must be mode 0600 (or stricter): a file that
// group or others may read or write is refused, now and at every reload.
func OpenTokenStore(path string) (*TokenStore, error) {
	if path == "" {
		return nil, workload.Invalid(workload.FieldError{Path: "path", Message: "is required"})
	}
	s := &TokenStore{path: path, now: time.Now}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, s.internal(err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	err := s.withFileLock(func() error {
		if _, err := os.Lstat(path); errors.Is(err, fs.ErrNotExist) {
			return s.writeLocked(nil)
		}
		_, err := s.reloadLocked()
		return err
	})
	if err != nil {
		return nil, err
	}
	return s, nil
}

// Path returns the store file's path.
func (s *TokenStore) Path() string { return s.path }

func (s *TokenStore) internal(err error) error {
	var we *workload.Error
	if errors.As(err, &we) {
		return we
	}
	return workload.Errorf(workload.Internal, "token store %s: %w", s.path, err)
}

// snapshot returns the current tokens, re-reading the file if it changed.
func (s *TokenStore) snapshot() (*tokenSet, error) {
	fi, err := os.Stat(s.path)
	if cur := s.cur.Load(); cur != nil && cur.current(fi, err) {
		return cur, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.reloadLocked()
}

// reloadLocked re-reads the file if it changed since the last read. A file
// that has disappeared is an empty store: every token is gone.
func (s *TokenStore) reloadLocked() (*tokenSet, error) {
	fi, err := os.Stat(s.path)
	if cur := s.cur.Load(); cur != nil && cur.current(fi, err) {
		return cur, nil
	}
	ts, err := s.read()
	if err != nil {
		return nil, err
	}
	s.cur.Store(ts)
	return ts, nil
}

// read reads and checks the store file.
func (s *TokenStore) read() (*tokenSet, error) {
	f, err := os.Open(s.path)
	if errors.Is(err, fs.ErrNotExist) {
		return newTokenSet(nil, nil)
	}
	if err != nil {
		return nil, s.internal(err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, s.internal(err)
	}
	if !fi.Mode().IsRegular() {
		return nil, s.internal(fmt.Errorf("not a regular file"))
	}
	if err := checkMode(fi); err != nil {
		return nil, s.internal(err)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxStoreSize+1))
	if err != nil {
		return nil, s.internal(err)
	}
	if len(data) > maxStoreSize {
		return nil, s.internal(fmt.Errorf("larger than %d bytes", maxStoreSize))
	}
	sf, err := parseStore(data)
	if err != nil {
		return nil, s.internal(err)
	}
	ts, err := newTokenSet(fi, sf.Tokens)
	if err != nil {
		return nil, s.internal(err)
	}
	return ts, nil
}

// parseStore decodes the store file: exact-case keys, no key twice, no
// unknown field, the supported version.
func parseStore(data []byte) (storeFile, error) {
	sf, err := workload.DecodeDocument[storeFile](data, "tokens.json")
	if err != nil {
		return sf, fmt.Errorf("decoding: %s", workload.AsError(err).Message)
	}
	if sf.Version != storeVersion {
		return sf, fmt.Errorf("unsupported version %d", sf.Version)
	}
	return sf, nil
}

// checkMode refuses a file that group or others may read or write: a
// writable one could have had a token added, a readable one says that
// someone loosened it, and the admin should look before it is trusted (the
// same rule as ssh's private keys). It is checked at every (re)load, which
// a chmod alone triggers. Windows has no such mode bits (access is by
// ACL): skipped.
func checkMode(fi os.FileInfo) error {
	if runtime.GOOS == "windows" {
		return nil
	}
	perm := fi.Mode().Perm()
	if perm&0o022 != 0 {
		return fmt.Errorf("mode %#o is writable by group or others; refusing to trust it (chmod 600 after checking its content)", perm)
	}
	if perm&0o044 != 0 {
		return fmt.Errorf("mode %#o is readable by group or others; refusing to load it (chmod 600 after checking who read it)", perm)
	}
	return nil
}

// ReadAdminToken reads the admin token file that EnsureAdmin wrote. Like
// the store, it is refused when group or others may read or write it, or
// when it is not a regular file.
func ReadAdminToken(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	if err := CheckAdminTokenFile(f); err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	b, err := io.ReadAll(io.LimitReader(f, 4096))
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(b)), nil
}

// CheckAdminTokenFile checks an open admin token file's type and mode.
func CheckAdminTokenFile(f *os.File) error {
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("not a regular file")
	}
	return checkMode(fi)
}

// newTokenSet indexes tokens, refusing an inconsistent set.
func newTokenSet(stamp os.FileInfo, tokens []storedToken) (*tokenSet, error) {
	ts := &tokenSet{stamp: stamp, tokens: tokens, byHash: make(map[[sha256.Size]byte]*storedToken, len(tokens))}
	ids := make(map[string]bool, len(tokens))
	for i := range tokens {
		t := &tokens[i]
		var h [sha256.Size]byte
		b, err := hex.DecodeString(t.SHA256)
		if err != nil || len(b) != sha256.Size {
			return nil, fmt.Errorf("token %q: bad sha256", t.ID)
		}
		copy(h[:], b)
		switch {
		case t.ID == "":
			return nil, fmt.Errorf("token without id")
		case ids[t.ID]:
			return nil, fmt.Errorf("token %q: duplicate id", t.ID)
		case ts.byHash[h] != nil:
			return nil, fmt.Errorf("token %q: duplicate hash", t.ID)
		case !t.Role.Valid():
			return nil, fmt.Errorf("token %q: unknown role %q", t.ID, t.Role)
		case userProblem(t.User) != "":
			return nil, fmt.Errorf("token %q: user %s", t.ID, userProblem(t.User))
		}
		ids[t.ID] = true
		ts.byHash[h] = t
	}
	return ts, nil
}

// withFileLock runs fn holding the cross-process lock. s.mu must be held.
func (s *TokenStore) withFileLock(fn func() error) error {
	unlock, err := lockFile(s.path + ".lock")
	if err != nil {
		return s.internal(fmt.Errorf("locking: %w", err))
	}
	defer unlock()
	return fn()
}

// errNoChange makes update skip the write.
var errNoChange = errors.New("no change")

// update applies fn to the latest tokens and writes the result.
func (s *TokenStore) update(fn func(tokens []storedToken) ([]storedToken, error)) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.withFileLock(func() error {
		ts, err := s.reloadLocked()
		if err != nil {
			return err
		}
		next, err := fn(slices.Clone(ts.tokens))
		if errors.Is(err, errNoChange) {
			return nil
		}
		if err != nil {
			return err
		}
		return s.writeLocked(next)
	})
}

// writeLocked writes tokens atomically and makes them the current snapshot.
// s.mu and the file lock must be held.
func (s *TokenStore) writeLocked(tokens []storedToken) error {
	if tokens == nil {
		tokens = []storedToken{}
	}
	data, err := json.MarshalIndent(storeFile{Version: storeVersion, Tokens: tokens}, "", "  ")
	if err != nil {
		return s.internal(err)
	}
	if err := writeFile(s.path, append(data, '\n')); err != nil {
		return s.internal(err)
	}
	fi, err := os.Stat(s.path)
	if err != nil {
		return s.internal(err)
	}
	ts, err := newTokenSet(fi, tokens)
	if err != nil {
		return s.internal(err)
	}
	s.cur.Store(ts)
	return nil
}

// writeFile is writeFileAtomic; tests replace it to inject failures.
var writeFile = writeFileAtomic

// writeFileAtomic replaces path with data, mode 0600: temporary file in the
// same directory, fsync, rename, fsync of the directory. Readers see the
// old content or the new, never a mix.
func writeFileAtomic(path string, data []byte) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if err = f.Chmod(storeMode); err != nil {
		return err
	}
	if _, err = f.Write(data); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	if err = os.Rename(tmp, path); err != nil {
		return err
	}
	return syncDir(dir)
}

// newID returns a random token id (not derived from the token).
func newID() (string, error) {
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return hex.EncodeToString(b), nil
}

// newToken returns a fresh token and the hex SHA-256 that is stored for it.
func newToken() (token, sum string, err error) {
	b := make([]byte, tokenBytes)
	if _, err := rand.Read(b); err != nil {
		return "", "", err
	}
	token = TokenPrefix + base64.RawURLEncoding.EncodeToString(b)
	h := sha256.Sum256([]byte(token))
	return token, hex.EncodeToString(h[:]), nil
}

// Create issues a token for user with role, expiring after ttl (0: never).
// The token is returned once and never stored; only its hash is.
func (s *TokenStore) Create(user string, role Role, ttl time.Duration) (token string, info TokenInfo, err error) {
	if err := ValidateTokenRequest(user, role, ttl); err != nil {
		return "", TokenInfo{}, err
	}
	token, info, err = s.create(user, role, ttl, nil)
	if err != nil {
		return "", TokenInfo{}, err
	}
	return token, info, nil
}

// ValidateTokenRequest checks what Create checks before it writes: a
// well-formed user, a known role, a TTL that is not negative. Every problem
// is a field of one InvalidArgument error.
func ValidateTokenRequest(user string, role Role, ttl time.Duration) error {
	var fields []workload.FieldError
	if m := localUserProblem(user); m != "" {
		fields = append(fields, workload.FieldError{Path: "user", Message: m})
	}
	if !role.Valid() {
		fields = append(fields, workload.FieldError{Path: "role", Message: "must be one of viewer, operator, admin"})
	}
	if ttl < 0 {
		fields = append(fields, workload.FieldError{Path: "ttl", Message: "must not be negative"})
	}
	if len(fields) > 0 {
		return workload.Invalid(fields...)
	}
	return nil
}

// create inserts a new token. If guard is non-nil it runs, under the
// store's locks, on the latest tokens and the new token before anything is
// written: errNoChange skips the insert (create then returns "" and no
// error), any other error vetoes it.
func (s *TokenStore) create(user string, role Role, ttl time.Duration, guard func([]storedToken, string) error) (string, TokenInfo, error) {
	token, sum, err := newToken()
	if err != nil {
		return "", TokenInfo{}, s.internal(err)
	}
	var info TokenInfo
	err = s.update(func(tokens []storedToken) ([]storedToken, error) {
		if guard != nil {
			if err := guard(tokens, token); err != nil {
				return nil, err
			}
		}
		var id string
		for id == "" || slices.ContainsFunc(tokens, func(t storedToken) bool { return t.ID == id }) {
			if id, err = newID(); err != nil {
				return nil, s.internal(err)
			}
		}
		now := s.now().UTC()
		info = TokenInfo{ID: id, User: user, Role: role, Created: now}
		if ttl > 0 {
			info.Expires = now.Add(ttl)
		}
		return append(tokens, storedToken{TokenInfo: info, SHA256: sum}), nil
	})
	if err != nil || info.ID == "" {
		return "", TokenInfo{}, err
	}
	return token, info, nil
}

// List returns every token, expired ones included, oldest first. It never
// includes a token's value or hash. If the file cannot be read, it returns
// what was last read.
func (s *TokenStore) List() []TokenInfo {
	ts, err := s.snapshot()
	if err != nil {
		if ts = s.cur.Load(); ts == nil {
			return nil
		}
	}
	out := make([]TokenInfo, len(ts.tokens))
	for i, t := range ts.tokens {
		out[i] = t.TokenInfo
	}
	slices.SortFunc(out, func(a, b TokenInfo) int {
		return cmp.Or(a.Created.Compare(b.Created), strings.Compare(a.ID, b.ID))
	})
	return out
}

// Revoke deletes the token with id. An unknown id is a NotFound error.
func (s *TokenStore) Revoke(id string) error {
	return s.update(func(tokens []storedToken) ([]storedToken, error) {
		i := slices.IndexFunc(tokens, func(t storedToken) bool { return t.ID == id })
		if id == "" || i < 0 {
			return nil, workload.Errorf(workload.NotFound, "token %q not found", id)
		}
		return slices.Delete(tokens, i, i+1), nil
	})
}

// Authenticate returns the principal a token was issued to. A malformed,
// unknown, revoked or expired token is an Unauthenticated error; the error
// never contains the token.
//
// The lookup is a map keyed by the SHA-256 of the presented token. A map
// lookup is not constant-time, but what it could leak through timing is
// how the hash of the caller's own input relates to the stored hashes. That
// does not help forge a token: the classic timing attack recovers a secret
// byte by byte by varying the input's bytes, but the caller cannot steer
// the bytes of a SHA-256 output, and knowing a stored hash (even all of it)
// does not yield a token with 256 bits of entropy. The found entry's hash
// is still compared with subtle.ConstantTimeCompare, so nothing in the path
// compares secret material byte by byte.
func (s *TokenStore) Authenticate(token string) (control.Principal, error) {
	if len(token) != tokenLen || !strings.HasPrefix(token, TokenPrefix) {
		return control.Principal{}, workload.Errorf(workload.Unauthenticated, "malformed bearer token")
	}
	if _, err := base64.RawURLEncoding.DecodeString(token[len(TokenPrefix):]); err != nil {
		return control.Principal{}, workload.Errorf(workload.Unauthenticated, "malformed bearer token")
	}
	ts, err := s.snapshot()
	if err != nil {
		return control.Principal{}, err
	}
	sum := sha256.Sum256([]byte(token))
	t := ts.byHash[sum]
	if t == nil {
		return control.Principal{}, workload.Errorf(workload.Unauthenticated, "unknown or revoked bearer token")
	}
	stored, _ := hex.DecodeString(t.SHA256) // checked when loaded
	if subtle.ConstantTimeCompare(stored, sum[:]) != 1 {
		return control.Principal{}, workload.Errorf(workload.Unauthenticated, "unknown or revoked bearer token")
	}
	if t.Expired(s.now()) {
		return control.Principal{}, workload.Errorf(workload.Unauthenticated, "bearer token %s expired at %s", t.ID, t.Expires.Format(time.RFC3339))
	}
	return control.Principal{User: t.User, Name: t.User, Auth: "token:" + t.ID, Role: string(t.Role)}, nil
}

// AdminTokenFile returns the file EnsureAdmin writes the first admin token
// to for a store at storePath: "admin.token" in the same directory.
func AdminTokenFile(storePath string) string {
	return filepath.Join(filepath.Dir(storePath), AdminTokenFileName)
}

// EnsureAdmin opens (or creates) the store at path and, when it holds no
// unexpired admin token, creates one for user "admin" that never expires
// and writes it in plaintext to AdminTokenFile(path), mode 0600, for the
// operator to read. It returns the token and created=true in that case, and
// "", false when an admin token already exists. Callers should tell the
// operator where the file is (AdminTokenFile), never log the token.
func EnsureAdmin(path string) (token string, created bool, err error) {
	s, err := OpenTokenStore(path)
	if err != nil {
		return "", false, err
	}
	return s.EnsureAdmin()
}

// EnsureAdmin is the package-level EnsureAdmin on an open store.
//
// The admin file is written before the store, under the store's lock: if
// writing the store then fails the file is removed again, so the store
// never holds an admin token nobody can read, and two processes starting
// at once create one admin token, not two.
func (s *TokenStore) EnsureAdmin() (token string, created bool, err error) {
	file := AdminTokenFile(s.path)
	wrote := false
	token, _, err = s.create(AdminUser, RoleAdmin, 0, func(tokens []storedToken, token string) error {
		now := s.now()
		for _, t := range tokens {
			if t.Role == RoleAdmin && !t.Expired(now) {
				return errNoChange
			}
		}
		if err := writeFile(file, []byte(token+"\n")); err != nil {
			return s.internal(fmt.Errorf("writing %s: %w", file, err))
		}
		wrote = true
		return nil
	})
	if err != nil {
		if wrote {
			os.Remove(file)
		}
		return "", false, err
	}
	return token, token != "", nil
}
