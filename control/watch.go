package control

import (
	"context"
	"encoding/json"
	"iter"
	"sync"
	"time"

	"github.com/alphaswarm/controller/provider"
	"github.com/alphaswarm/controller/workload"
)

// DefaultListPollInterval is Options.ListPollInterval's default.
const DefaultListPollInterval = 2 * time.Second

// Watch yields the current status of every service of every target, then
// each change as it happens, until ctx ends. Targets whose provider is a
// provider.Watcher stream their changes; the others are listed every
// Options.ListPollInterval and only changed statuses are yielded. A target that
// fails is reported once as an error and retried; the stream goes on.
func (rt *Runtime) Watch(ctx context.Context) iter.Seq2[workload.DeploymentStatus, error] {
	return rt.WatchOnly(ctx, nil)
}

// WatchOnly is Watch over the targets for which visible is true (every
// target when visible is nil): the others are not watched, so neither
// their statuses nor their errors reach the caller.
func (rt *Runtime) WatchOnly(ctx context.Context, visible func(target string) bool) iter.Seq2[workload.DeploymentStatus, error] {
	return func(yield func(workload.DeploymentStatus, error) bool) {
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		type item struct {
			st  workload.DeploymentStatus
			err error
		}
		ch := make(chan item, 64)
		var wg sync.WaitGroup
		send := func(it item) bool {
			select {
			case ch <- it:
				return true
			case <-ctx.Done():
				return false
			}
		}
		for _, t := range rt.targets {
			if visible != nil && !visible(t.Name) {
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				rt.watchTarget(ctx, t, func(st workload.DeploymentStatus, err error) bool {
					if err == nil {
						st = *rt.normalise(t.Name, st)
					}
					return send(item{st, err})
				})
			}()
		}
		go func() { wg.Wait(); close(ch) }()
		for it := range ch {
			if !yield(it.st, it.err) {
				return
			}
		}
	}
}

func (rt *Runtime) watchTarget(ctx context.Context, t Target, emit func(workload.DeploymentStatus, error) bool) {
	last := map[string]string{}
	changed := func(st workload.DeploymentStatus) bool {
		st.ObservedAt = time.Time{}
		b, _ := json.Marshal(st)
		if last[st.Name] == string(b) {
			return false
		}
		last[st.Name] = string(b)
		return true
	}
	list := func() bool {
		l, ok := t.Provider.(provider.Lister)
		if !ok {
			return true
		}
		sts, err := l.List(ctx)
		if err != nil {
			return ctx.Err() != nil || emit(workload.DeploymentStatus{}, err)
		}
		for _, st := range sts {
			if changed(st) && !emit(st, nil) {
				return false
			}
		}
		return true
	}
	if !list() {
		return
	}
	if w, ok := t.Provider.(provider.Watcher); ok {
		for st, err := range w.Watch(ctx) {
			if err != nil {
				if !emit(workload.DeploymentStatus{}, err) {
					return
				}
				break
			}
			if changed(st) && !emit(st, nil) {
				return
			}
		}
	}
	tick := time.NewTicker(rt.listPoll)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			if !list() {
				return
			}
		}
	}
}
