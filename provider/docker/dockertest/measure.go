package dockertest

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"time"

	"github.com/moby/moby/api/types/events"
	"github.com/moby/moby/client"
)

// CLI runs the docker CLI and returns its standard output, trimmed.
func CLI(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "docker", args...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("docker %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(errOut.String()))
	}
	return strings.TrimSpace(out.String()), nil
}

// Replace is how a docker CLI user replaces a container by hand, the peer
// of a provider's restart (issue 18): `docker run -d runArgs...` starts the
// new container, then `docker rm -f old` removes the old one. It returns
// the new container's id and how long the two commands took together.
func Replace(ctx context.Context, old string, runArgs ...string) (string, time.Duration, error) {
	t0 := time.Now()
	id, err := CLI(ctx, append([]string{"run", "-d"}, runArgs...)...)
	if err != nil {
		return "", 0, err
	}
	if old != "" {
		if _, err := CLI(ctx, "rm", "-f", old); err != nil {
			return id, 0, err
		}
	}
	return id, time.Since(t0), nil
}

// Downtime measures, from the Engine's container events, how long no
// container matching a label filter was ready: running, and healthy where
// the container has a health check. Start it before the operation, Stop it
// after.
type Downtime struct {
	cancel context.CancelFunc
	done   chan struct{}

	mu      sync.Mutex
	ready   map[string]bool
	health  map[string]bool // containers with a health check
	downAt  time.Time       // when the ready set last became empty; zero while not empty
	down    time.Duration
	gaps    int
	readyAt time.Time // when a container last became ready
	lastErr error
}

// WatchDowntime subscribes to the container events of containers labelled
// label ("key=value") and reads which of them are ready now.
func WatchDowntime(ctx context.Context, cli *client.Client, label string) (*Downtime, error) {
	ctx, cancel := context.WithCancel(ctx)
	d := &Downtime{cancel: cancel, done: make(chan struct{}), ready: map[string]bool{}, health: map[string]bool{}}
	f := make(client.Filters).Add("type", string(events.ContainerEventType)).Add("label", label)
	res := cli.Events(ctx, client.EventsListOptions{Filters: f})
	list, err := cli.ContainerList(ctx, client.ContainerListOptions{Filters: make(client.Filters).Add("label", label)})
	if err != nil {
		cancel()
		return nil, err
	}
	for _, c := range list.Items {
		r, err := cli.ContainerInspect(ctx, c.ID, client.ContainerInspectOptions{})
		if err != nil || r.Container.State == nil {
			continue
		}
		st := r.Container.State
		hasHealth := r.Container.Config != nil && r.Container.Config.Healthcheck != nil && len(r.Container.Config.Healthcheck.Test) > 0 && r.Container.Config.Healthcheck.Test[0] != "NONE"
		d.health[c.ID] = hasHealth
		if st.Running && (!hasHealth || st.Health != nil && st.Health.Status == "healthy") {
			d.ready[c.ID] = true
		}
	}
	if len(d.ready) == 0 {
		d.downAt = time.Now()
	}
	go func() {
		defer close(d.done)
		for {
			select {
			case <-ctx.Done():
				return
			case err := <-res.Err:
				if ctx.Err() == nil {
					d.mu.Lock()
					d.lastErr = err
					d.mu.Unlock()
				}
				return
			case m := <-res.Messages:
				d.onEvent(ctx, cli, m)
			}
		}
	}()
	return d, nil
}

func (d *Downtime) onEvent(ctx context.Context, cli *client.Client, m events.Message) {
	id := m.Actor.ID
	when := time.Unix(0, m.TimeNano)
	action := string(m.Action)
	d.mu.Lock()
	hasHealth, known := d.health[id]
	d.mu.Unlock()
	if !known && m.Action == events.ActionStart {
		if r, err := cli.ContainerInspect(ctx, id, client.ContainerInspectOptions{}); err == nil && r.Container.Config != nil {
			hc := r.Container.Config.Healthcheck
			hasHealth = hc != nil && len(hc.Test) > 0 && hc.Test[0] != "NONE"
		}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.health[id] = hasHealth
	switch {
	case m.Action == events.ActionStart && !hasHealth,
		strings.HasPrefix(action, string(events.ActionHealthStatus)) && strings.HasSuffix(action, "healthy") && !strings.HasSuffix(action, "unhealthy"):
		d.ready[id] = true
		d.readyAt = when
	case m.Action == events.ActionDie, m.Action == events.ActionDestroy,
		strings.HasSuffix(action, "unhealthy"), m.Action == events.ActionPause:
		delete(d.ready, id)
	default:
		return
	}
	switch {
	case len(d.ready) == 0 && d.downAt.IsZero():
		d.downAt = when
	case len(d.ready) > 0 && !d.downAt.IsZero():
		d.down += when.Sub(d.downAt)
		d.gaps++
		d.downAt = time.Time{}
	}
}

// Stop ends the watch and returns the total time with no ready container
// and the number of such gaps. A gap still open counts until now.
func (d *Downtime) Stop() (time.Duration, int, error) {
	d.cancel()
	<-d.done
	d.mu.Lock()
	defer d.mu.Unlock()
	down, gaps := d.down, d.gaps
	if !d.downAt.IsZero() {
		down += time.Since(d.downAt)
		gaps++
	}
	return down, gaps, d.lastErr
}

// ReadyAt returns when a container matching the filter last became ready
// (started, or healthy where it has a health check) by the Engine's clock;
// zero if none did since WatchDowntime.
func (d *Downtime) ReadyAt() time.Time {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.readyAt
}
