package azure

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/alphaswarm/controller/provider"
	"github.com/alphaswarm/controller/provider/azure/fakeazure"
	"github.com/alphaswarm/controller/workload"
)

// TestConfigValueLimits (review #9, Azure): an App Configuration
// key-value over 10,000 characters or a Key Vault secret over 25k bytes is
// invalid_argument naming the key, before anything is written; the fake
// refuses both as the services do.
func TestConfigValueLimits(t *testing.T) {
	for _, c := range []struct {
		key   string
		value string
	}{
		{"BIG", strings.Repeat("x", fakeazure.MaxKeyValueChars)},
		{"secret.BIG", strings.Repeat("x", fakeazure.MaxSecretBytes+1)},
	} {
		t.Run(c.key, func(t *testing.T) {
			p, f := openFake(t, fakeazure.Options{}, nil)
			sp := spec("cfg", 1)
			sp.Config = map[string]string{"A": "small", c.key: c.value}
			_, err := p.Start(ctxT(t), sp)
			if workload.CodeOf(err) != workload.InvalidArgument || !strings.Contains(err.Error(), "config."+c.key) || !provider.NothingChanged(err) {
				t.Fatalf("Start = %v; want invalid_argument at config.%s", err, c.key)
			}
			if n := f.Calls("AppConfig PUT") + f.Calls("SetSecret") + f.Calls("BeginCreateOrUpdate"); n != 0 {
				t.Fatalf("%d writes before the refusal", n)
			}
		})
	}
	// Just under both limits is written.
	p, _ := openFake(t, fakeazure.Options{}, nil)
	sp := spec("cfg", 1)
	sp.Config = map[string]string{"A": strings.Repeat("x", fakeazure.MaxKeyValueChars-len("alphaswarm/cfg/A")-len(testTarget)),
		"secret.B": strings.Repeat("x", fakeazure.MaxSecretBytes)}
	if _, err := p.Start(ctxT(t), sp); err != nil {
		t.Fatalf("at the limits: %v", err)
	}
}

// TestLogsFollowReadsNewestWindow (review Z4): following no longer
// downloads each group's whole log (up to 4 MB) every poll: it reads the
// newest lines (tail) and falls back to a full read only when more lines
// arrived than the window holds; every line still arrives exactly once.
func TestLogsFollowReadsNewestWindow(t *testing.T) {
	p, f := openFake(t, fakeazure.Options{}, nil)
	if _, err := p.Start(ctxT(t), spec("chat", 1)); err != nil {
		t.Fatal(err)
	}
	base := time.Now().Add(-time.Hour)
	for i := range 5000 {
		f.AppendLog("chat-0", base.Add(time.Duration(i)*time.Millisecond), fmt.Sprintf("old %d", i))
	}
	c, cancel := context.WithCancel(ctxT(t))
	defer cancel()
	var got []string
	emit := func(from, n int) {
		for i := range n {
			f.AppendLog("chat-0", time.Now(), fmt.Sprintf("new %05d", from+i))
		}
	}
	go func() {
		for f.Calls("ListLogs") == 0 { // the follow has seeded its cursor
			time.Sleep(2 * time.Millisecond)
		}
		emit(0, 10)
	}()
	for l, err := range p.Logs(c, "chat", provider.LogOptions{Follow: true, Tail: 0}) {
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(l.Text, "new ") {
			t.Fatalf("history line %q emitted while following with tail 0", l.Text)
		}
		got = append(got, l.Text)
		switch len(got) {
		case 10:
			emit(10, 1500) // more than the window between two polls
		case 1510:
			emit(1510, 5)
		}
		if len(got) == 1515 {
			break
		}
	}
	for i, l := range got {
		if want := fmt.Sprintf("new %05d", i); l != want {
			t.Fatalf("line %d = %q, want %q", i, l, want)
		}
	}
	if n := f.Calls("ListLogs without tail"); n > 2 {
		t.Errorf("%d full log reads; want at most 2 (seeding is a window read, one burst larger than the window)", n)
	}
}
