package control

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/alphaswarm/controller/workload"
)

// Env and config values of a revision are never stored in the clear: the
// stored spec has them removed (keys kept), and the whole spec is kept
// sealed beside it, AES-256-GCM under the controller's revision key, with the
// service and the run as additional data (a sealed blob moved to another
// row does not open). Sealing, not a backend version reference, because
// history must read the same on every backend and only some have one (a
// Kubernetes ReplicaSet keeps a ConfigMap's name, not its old contents;
// docker keeps nothing once a container is replaced), and because a
// reference would make a rollback depend on the backend still holding
// what it once had. The price is a key to keep: several controllers on
// one PostgreSQL ledger must share it (config revisions.key_file), and a
// revision sealed under a lost key cannot be rolled back to (history
// still lists it, with the reason).

// RevisionKeySize is the size of the revision key: AES-256.
const RevisionKeySize = 32

// sealMagic starts every sealed blob: format 1, then the key id (4
// bytes), the nonce and the ciphertext.
var sealMagic = []byte("ASR1")

type sealer struct {
	aead cipher.AEAD
	id   []byte // the first 4 bytes of sha256(key): names the key in errors
}

func newSealer(key []byte) (*sealer, error) {
	if len(key) != RevisionKeySize {
		return nil, fmt.Errorf("control: the revision key must be %d bytes, not %d", RevisionKeySize, len(key))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(key)
	return &sealer{aead: aead, id: sum[:4]}, nil
}

// sealAAD binds a blob to its row.
func sealAAD(target, service, runID string) []byte {
	return []byte("alphaswarm/revision\x00" + target + "\x00" + service + "\x00" + runID)
}

// seal encrypts the whole spec (the stored public spec lacks its env and
// config values; this is what a rollback restores).
func (s *sealer) seal(v workload.DeploymentSpec, aad []byte) ([]byte, error) {
	plain, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, s.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	out := append(append(append([]byte{}, sealMagic...), s.id...), nonce...)
	return s.aead.Seal(out, nonce, plain, aad), nil
}

// errOtherKey: a blob sealed under another revision key.
var errOtherKey = errors.New("sealed with another revision key")

func (s *sealer) open(blob, aad []byte) (workload.DeploymentSpec, error) {
	var v workload.DeploymentSpec
	head := len(sealMagic) + len(s.id) + s.aead.NonceSize()
	if len(blob) < head || !bytes.Equal(blob[:len(sealMagic)], sealMagic) {
		return v, errors.New("not a sealed revision")
	}
	if id := blob[len(sealMagic) : len(sealMagic)+len(s.id)]; !bytes.Equal(id, s.id) {
		return v, fmt.Errorf("%w (key id %s; this controller's is %s)", errOtherKey, hex.EncodeToString(id), hex.EncodeToString(s.id))
	}
	plain, err := s.aead.Open(nil, blob[head-s.aead.NonceSize():head], blob[head:], aad)
	if err != nil {
		return v, errors.New("the sealed spec does not authenticate (changed, or moved from another revision)")
	}
	if err := json.Unmarshal(plain, &v); err != nil {
		return v, fmt.Errorf("the sealed spec does not decode: %w", err)
	}
	return v, nil
}

// LoadRevisionKey reads the revision key from path: 64 hex digits (a
// trailing newline allowed). When the file does not exist and create is
// set, it generates a key and writes it with mode 0600 (never replacing a
// file another process wrote first). A file readable by group or others
// is refused: the key opens every sealed config value.
func LoadRevisionKey(path string, create bool) ([]byte, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) && create {
		key := make([]byte, RevisionKeySize)
		if _, err := rand.Read(key); err != nil {
			return nil, err
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, fmt.Errorf("revision key: %w", err)
		}
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err == nil {
			_, err = f.WriteString(hex.EncodeToString(key) + "\n")
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return nil, fmt.Errorf("revision key %s: %w", path, err)
			}
			return key, nil
		}
		if !errors.Is(err, os.ErrExist) {
			return nil, fmt.Errorf("revision key: %w", err)
		}
		b, err = os.ReadFile(path) // another process created it first
	}
	if err != nil {
		return nil, fmt.Errorf("revision key: %w", err)
	}
	if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("revision key %s: mode %04o lets others read it; chmod 600 it", path, fi.Mode().Perm())
	}
	key, err := hex.DecodeString(strings.TrimSpace(string(b)))
	if err != nil || len(key) != RevisionKeySize {
		return nil, fmt.Errorf("revision key %s: want %d hex digits (%d bytes)", path, 2*RevisionKeySize, RevisionKeySize)
	}
	return key, nil
}
