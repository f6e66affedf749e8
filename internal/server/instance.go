package server

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

var instanceIDRE = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,31}$`)

// instanceID returns this controller's instance id, kept in
// <dataDir>/instance and created (8 random hex digits) on first start.
// Targets are opened with it, so a backend shared by several controllers
// (one Docker Engine) keeps their services apart; a target's options can
// name another instance to share its services deliberately.
func instanceID(dataDir string) (string, error) {
	path := filepath.Join(dataDir, "instance")
	b, err := os.ReadFile(path)
	if err == nil {
		id := strings.TrimSpace(string(b))
		if !instanceIDRE.MatchString(id) {
			return "", fmt.Errorf("%s: %q is not an instance id (lower-case letters, digits and '-', at most 32)", path, id)
		}
		return id, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return "", err
	}
	r := make([]byte, 4)
	if _, err := rand.Read(r); err != nil {
		return "", err
	}
	id := hex.EncodeToString(r)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return instanceID(dataDir) // another process wrote it first
	}
	if err != nil {
		return "", err
	}
	if _, err := f.WriteString(id + "\n"); err != nil {
		f.Close()
		return "", err
	}
	return id, f.Close()
}
