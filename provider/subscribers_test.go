package provider_test

import (
	"slices"
	"sync"
	"testing"

	"github.com/alphaswarm/controller/provider"
)

func TestSubscribers(t *testing.T) {
	tests := []struct {
		name     string
		filter   string   // what the subscriber listens to
		cancel   bool     // unsubscribe before the notifications
		notify   []string // the changes, in order
		wantWake bool
		want     []string // what Take returns, once woken
	}{
		{name: "every service, sorted and coalesced", notify: []string{"web", "api", "web", "web"}, wantWake: true, want: []string{"api", "web"}},
		{name: "one service", filter: "web", notify: []string{"api", "web", "db", "web"}, wantWake: true, want: []string{"web"}},
		{name: "another service only", filter: "web", notify: []string{"api", "db"}},
		{name: "nothing changed"},
		{name: "cancelled", cancel: true, notify: []string{"web"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var ss provider.Subscribers
			sub, cancel := ss.Subscribe(tt.filter)
			defer cancel()
			if tt.cancel {
				cancel()
			}
			for _, n := range tt.notify {
				ss.Notify(n)
			}
			select {
			case <-sub.Wake():
				if !tt.wantWake {
					t.Fatalf("woken; want no wake-up")
				}
			default:
				if tt.wantWake {
					t.Fatalf("not woken; want a wake-up")
				}
			}
			if got := sub.Take(); !slices.Equal(got, tt.want) {
				t.Errorf("Take() = %q, want %q", got, tt.want)
			}
			if got := sub.Take(); len(got) != 0 {
				t.Errorf("second Take() = %q, want none", got)
			}
			select {
			case <-sub.Wake():
				t.Errorf("woken again after one burst; want one wake-up a burst")
			default:
			}
		})
	}
}

// TestSubscribersConcurrent lets the race detector see Notify, Subscribe,
// cancel and Take run at once; every subscriber still hears of the change
// made after it subscribed.
func TestSubscribersConcurrent(t *testing.T) {
	var ss provider.Subscribers
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sub, cancel := ss.Subscribe("")
			defer cancel()
			name := string(rune('a' + i))
			ss.Notify(name)
			<-sub.Wake()
			if got := sub.Take(); !slices.Contains(got, name) {
				t.Errorf("subscriber %d took %q, want %q among them", i, got, name)
			}
		}()
	}
	wg.Wait()
}
