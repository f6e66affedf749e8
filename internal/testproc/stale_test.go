package testproc

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
)

func TestMakeDirRemovesWhatTheDeadLeft(t *testing.T) {
	base := t.TempDir()
	// A pid that is surely gone: a child that ran and was reaped.
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	dead := cmd.Process.Pid
	if Alive(dead) || !Alive(os.Getpid()) {
		t.Fatalf("Alive(dead %d) = %v, Alive(self) = %v", dead, Alive(dead), Alive(os.Getpid()))
	}
	mk := func(name string, owner int) string {
		d := filepath.Join(base, name)
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, ownerFile), []byte(strconv.Itoa(owner)), 0o644); err != nil {
			t.Fatal(err)
		}
		return d
	}
	abandoned := mk("kit-abandoned", dead)
	busy := mk("kit-busy", dead)
	live := mk("kit-live", os.Getpid())
	other := mk("other-abandoned", dead)
	unmarked := filepath.Join(base, "kit-unmarked")
	if err := os.Mkdir(unmarked, 0o755); err != nil {
		t.Fatal(err)
	}

	dir, err := MakeDir(base, "kit-", func(d string) bool { return d == busy })
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, ownerFile))
	if err != nil || string(b) != strconv.Itoa(os.Getpid()) {
		t.Fatalf("owner of the new directory: %q, %v", b, err)
	}
	for d, want := range map[string]bool{abandoned: false, busy: true, live: true, other: true, unmarked: true} {
		if _, err := os.Stat(d); (err == nil) != want {
			t.Errorf("%s exists = %v, want %v", filepath.Base(d), err == nil, want)
		}
	}
}
