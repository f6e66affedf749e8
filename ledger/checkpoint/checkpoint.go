// Package checkpoint anchors the workload_runs ledger outside its own
// database, in the manner of AWS CloudTrail's signed digest files and
// Certificate Transparency's signed tree heads: every N rows or T seconds a
// controller signs (seq, head hash, halt state, time) with an ed25519 key and
// appends the checkpoint to a file kept in another directory (append-only,
// fsynced), and to the export sinks an admin configures (a JSON-lines file,
// syslog, an HTTP webhook). The same sinks can receive every ledger row as
// it is written, each with its hash, from a cursor persisted per sink, so a
// sink that was down is caught up from the ledger when it returns.
//
// Whoever can write the database but does not hold the key cannot truncate,
// rewrite and re-hash, or drop a halt row without VerifyLedger noticing: a
// checkpointed head is missing or different, or a checkpointed halt is
// absent. Ledger wraps a backend (ledger/sqlite, ledger/postgres) for the
// running controller: it checks the ledger against the checkpoint file at
// Open (a ledger that does not verify is put in read-only mode), feeds the
// signer and the sinks after each commit without ever blocking an append,
// watches the rows it reads for a chain that no longer extends the head it
// checkpointed, and keeps a halt that a checkpoint recorded in force even
// if its rows disappear from the database.
//
// The package never stores secret values: rows are already redacted, and
// the signing key lives in its own 0600 file.
package checkpoint

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/alphaswarm/controller/ledger"
)

// Version is the "v" of checkpoints this package writes.
const Version = 1

// Checkpoint is one signed statement: at Time the ledger held Seq rows whose
// last hash is Head, and the halt switches in Halts were on.
type Checkpoint struct {
	V    int    `json:"v"`
	Seq  int64  `json:"seq"`
	Head string `json:"head"`
	// Halts are the halt scopes on at Seq ("*" global, else a target),
	// sorted.
	Halts []string  `json:"halts"`
	Time  time.Time `json:"time"`
	// KeyID names the signing key: the first 16 hex digits of the sha256
	// of its public key.
	KeyID string `json:"keyId"`
	// Sig is the base64 ed25519 signature of Message().
	Sig string `json:"sig"`
}

// Message is the byte string the signature covers.
func (c Checkpoint) Message() []byte {
	halts := slices.Clone(c.Halts)
	slices.Sort(halts)
	return fmt.Appendf(nil, "alphaswarm-ledger-checkpoint/v1\n%d\n%s\n%s\n%d\n", c.Seq, c.Head,
		strings.Join(halts, ","), c.Time.UnixNano())
}

// Sign fills in KeyID and Sig.
func Sign(c Checkpoint, key ed25519.PrivateKey) Checkpoint {
	c.V = Version
	c.Time = time.Unix(0, c.Time.UnixNano()).UTC()
	if c.Halts == nil {
		c.Halts = []string{}
	}
	slices.Sort(c.Halts)
	c.KeyID = KeyID(key.Public().(ed25519.PublicKey))
	c.Sig = base64.StdEncoding.EncodeToString(ed25519.Sign(key, c.Message()))
	return c
}

// Check verifies c's signature with pub.
func (c Checkpoint) Check(pub ed25519.PublicKey) error {
	if c.V != Version {
		return fmt.Errorf("checkpoint version %d is not %d", c.V, Version)
	}
	sig, err := base64.StdEncoding.DecodeString(c.Sig)
	if err != nil || len(sig) != ed25519.SignatureSize {
		return errors.New("checkpoint signature is not a base64 ed25519 signature")
	}
	if !ed25519.Verify(pub, c.Message(), sig) {
		if id := KeyID(pub); c.KeyID != id {
			return fmt.Errorf("checkpoint was signed by key %s, not by the public key given (%s)", c.KeyID, id)
		}
		return errors.New("checkpoint signature does not verify: the checkpoint was altered")
	}
	return nil
}

// halted reports whether scope is in c.Halts.
func (c Checkpoint) halted(scope string) bool { return slices.Contains(c.Halts, scope) }

// KeyID is the first 16 hex digits of the sha256 of pub.
func KeyID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return hex.EncodeToString(sum[:8])
}

// LoadOrCreateKey reads the PKCS#8 PEM ed25519 private key at path, or
// creates one there (mode 0600, in a 0700 directory) when the file does not
// exist. A key file readable by group or others is refused.
func LoadOrCreateKey(path string) (key ed25519.PrivateKey, created bool, err error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		_, key, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, false, err
		}
		der, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			return nil, false, err
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, false, fmt.Errorf("checkpoint key: %w", err)
		}
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return nil, false, fmt.Errorf("checkpoint key: %w", err)
		}
		if err := pem.Encode(f, &pem.Block{Type: "PRIVATE KEY", Bytes: der}); err != nil {
			f.Close()
			return nil, false, fmt.Errorf("checkpoint key: %w", err)
		}
		if err := f.Sync(); err != nil {
			f.Close()
			return nil, false, fmt.Errorf("checkpoint key: %w", err)
		}
		return key, true, f.Close()
	}
	if err != nil {
		return nil, false, fmt.Errorf("checkpoint key: %w", err)
	}
	if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 {
		return nil, false, fmt.Errorf("checkpoint key %s: mode %04o is readable by group or others; refusing to use it (chmod 600)", path, fi.Mode().Perm())
	}
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "PRIVATE KEY" {
		return nil, false, fmt.Errorf("checkpoint key %s: not a PEM \"PRIVATE KEY\"", path)
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, false, fmt.Errorf("checkpoint key %s: %w", path, err)
	}
	ek, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, false, fmt.Errorf("checkpoint key %s: a %T, not an ed25519 key", path, k)
	}
	return ek, false, nil
}

// PublicKeyString is the one-line form of pub: "ed25519:" + base64.
func PublicKeyString(pub ed25519.PublicKey) string {
	return "ed25519:" + base64.StdEncoding.EncodeToString(pub)
}

// PublicKeyPEM is pub as a PEM "PUBLIC KEY" (PKIX).
func PublicKeyPEM(pub ed25519.PublicKey) []byte {
	der, _ := x509.MarshalPKIXPublicKey(pub)
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

// ParsePublicKey reads a public key given as "ed25519:BASE64", as a PEM
// "PUBLIC KEY", or as a path to a file holding either.
func ParsePublicKey(s string) (ed25519.PublicKey, error) {
	s = strings.TrimSpace(s)
	if !strings.HasPrefix(s, "ed25519:") && !strings.HasPrefix(s, "-----BEGIN") {
		b, err := os.ReadFile(s)
		if err != nil {
			return nil, fmt.Errorf("public key: %w", err)
		}
		s = strings.TrimSpace(string(b))
	}
	if rest, ok := strings.CutPrefix(s, "ed25519:"); ok {
		b, err := base64.StdEncoding.DecodeString(rest)
		if err != nil || len(b) != ed25519.PublicKeySize {
			return nil, errors.New("public key: \"ed25519:\" must be followed by the base64 of 32 bytes")
		}
		return ed25519.PublicKey(b), nil
	}
	blk, _ := pem.Decode([]byte(s))
	if blk == nil || blk.Type != "PUBLIC KEY" {
		return nil, errors.New("public key: neither \"ed25519:BASE64\" nor a PEM \"PUBLIC KEY\"")
	}
	k, err := x509.ParsePKIXPublicKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("public key: %w", err)
	}
	pub, ok := k.(ed25519.PublicKey)
	if !ok {
		return nil, fmt.Errorf("public key: a %T, not ed25519", k)
	}
	return pub, nil
}

// Line is one line of a checkpoint file or an export sink: a checkpoint or
// a ledger row.
type Line struct {
	Type       string         `json:"type"` // "checkpoint" or "row"
	Checkpoint *Checkpoint    `json:"checkpoint,omitempty"`
	Row        *ledger.Record `json:"row,omitempty"`
}

// File is an append-only checkpoint file: one JSON Line per checkpoint,
// each write fsynced before Append returns.
type File struct {
	f *os.File
}

// OpenFile opens (creating, mode 0600, directory 0700) the checkpoint file
// at path for appending.
func OpenFile(path string) (*File, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("checkpoint file: %w", err)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("checkpoint file: %w", err)
	}
	// A crash during a write can leave a torn last line: end it, so the
	// next checkpoint starts a line of its own (Read skips the torn one).
	if fi, err := f.Stat(); err == nil && fi.Size() > 0 {
		last := make([]byte, 1)
		if _, err := f.ReadAt(last, fi.Size()-1); err == nil && last[0] != '\n' {
			if _, err := f.Write([]byte("\n")); err != nil {
				f.Close()
				return nil, fmt.Errorf("checkpoint file: %w", err)
			}
		}
	}
	return &File{f: f}, nil
}

// Append writes c and syncs the file.
func (f *File) Append(c Checkpoint) error {
	b, err := json.Marshal(Line{Type: "checkpoint", Checkpoint: &c})
	if err != nil {
		return err
	}
	if _, err := f.f.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("checkpoint file: %w", err)
	}
	if err := f.f.Sync(); err != nil {
		return fmt.Errorf("checkpoint file: %w", err)
	}
	return nil
}

// Close closes the file.
func (f *File) Close() error { return f.f.Close() }

// ReadFile reads the checkpoints of a checkpoint file or of a JSON-lines
// export. Lines of other types are skipped, and so are lines that do not
// parse: a crash during a write leaves a torn line, which OpenFile ends
// before appending. A missing file holds no checkpoints.
func ReadFile(path string) ([]Checkpoint, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return Read(f)
}

// Read reads checkpoints from JSON lines (see ReadFile).
func Read(r io.Reader) ([]Checkpoint, error) {
	var out []Checkpoint
	br := bufio.NewReader(r)
	for {
		line, err := br.ReadBytes('\n')
		if len(line) > 0 && line[len(line)-1] == '\n' {
			line = bytes.TrimSpace(line)
			if len(line) > 0 {
				var l Line
				if jerr := json.Unmarshal(line, &l); jerr == nil && l.Type == "checkpoint" && l.Checkpoint != nil {
					out = append(out, *l.Checkpoint)
				}
			}
		}
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return out, err
		}
	}
}
