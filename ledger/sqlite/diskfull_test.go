package sqlite_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/alphaswarm/controller/ledger"
	"github.com/alphaswarm/controller/ledger/sqlite"
)

// TestDiskFull fills a real (tmpfs) file system under the ledger: appends
// fail and the head guard reports the ledger unhealthy (what /readyz
// shows), and both recover once space is freed. It needs root to mount.
func TestDiskFull(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("CI") != "" {
			t.Fatal("TestDiskFull needs root to mount a tmpfs, and CI is set")
		}
		t.Skip("SKIPPING: TestDiskFull needs root to mount a tmpfs")
	}
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", dir).CombinedOutput(); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("mount tmpfs: %v %s", err, out)
		}
		t.Skipf("SKIPPING: cannot mount a tmpfs: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", dir).Run() })
	ctx := context.Background()
	l, err := sqlite.Open(ctx, filepath.Join(dir, "ledger.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	big := strings.Repeat("x", 8<<10)
	app := func() error {
		_, err := l.Append(ctx, ledger.Record{RunID: "r", Kind: ledger.KindIntent, Detail: big})
		return err
	}
	for range 5 {
		if err := app(); err != nil {
			t.Fatal(err)
		}
	}
	// Fill what is left.
	filler := filepath.Join(dir, "filler")
	f, err := os.Create(filler)
	if err != nil {
		t.Fatal(err)
	}
	chunk := make([]byte, 4096)
	for {
		if _, err := f.Write(chunk); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatal(err)
			}
			break
		}
	}
	f.Close()
	var failed error
	for range 200 {
		if failed = app(); failed != nil {
			break
		}
	}
	if failed == nil {
		t.Fatal("appends kept succeeding on a full file system")
	}
	if h := l.HeadWatch().Health(); h == nil || !strings.Contains(h.Error(), "full") {
		t.Fatalf("Health on a full disk = %v (append error %v)", h, failed)
	}
	if l.HeadWatch().Tampered() != nil {
		t.Fatalf("a full disk counted as tampering: %v", l.HeadWatch().Tampered())
	}
	os.Remove(filler)
	if err := app(); err != nil {
		t.Fatalf("append after space was freed: %v", err)
	}
	if h := l.HeadWatch().Health(); h != nil {
		t.Fatalf("Health after space was freed: %v", h)
	}
	if res, err := l.Verify(ctx); err != nil || !res.OK {
		t.Fatalf("verify: %+v %v", res, err)
	}
}
