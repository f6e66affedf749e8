package kubernetes

import (
	"bufio"
	"context"
	"errors"
	"io"
	"iter"
	"slices"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/alphaswarm/controller/provider"
	"github.com/alphaswarm/controller/workload"
)

// maxLogLine bounds one log line; longer lines are cut.
const maxLogLine = 1 << 20

// containerFor picks the service's container in a pod: the one named after
// the service, else the first.
func containerFor(pod *corev1.Pod, service string) string {
	for _, c := range pod.Spec.Containers {
		if c.Name == service {
			return c.Name
		}
	}
	if len(pod.Spec.Containers) > 0 {
		return pod.Spec.Containers[0].Name
	}
	return service
}

// Logs implements provider.LogTailer over the pods' log subresource, each
// line tagged with its pod. Kubernetes merges a container's stdout and
// stderr into one log, so every line's Stream is "stdout". Tail is per pod;
// Since is passed to the API server (which counts in whole seconds).
// Without Follow the pods' lines are merged in time order; with Follow
// every pod is followed, pods that appear later are followed from their
// first line, and a stream that breaks (a container restart) is resumed
// after its last line. A pod whose container has not started yet has no
// log and is skipped (or, with Follow, waited for).
func (p *Provider) Logs(ctx context.Context, name string, opts provider.LogOptions) iter.Seq2[workload.LogLine, error] {
	return func(yield func(workload.LogLine, error) bool) {
		if err := workload.CheckName("name", name); err != nil {
			yield(workload.LogLine{}, err)
			return
		}
		if err := p.permitted(provider.OpLogs); err != nil {
			yield(workload.LogLine{}, err)
			return
		}
		if err := p.cache.waitSynced(ctx); err != nil {
			yield(workload.LogLine{}, err)
			return
		}
		if _, ok := p.cache.deployment(name); !ok {
			yield(workload.LogLine{}, notFound(name))
			return
		}
		if opts.Follow {
			p.followLogs(ctx, name, opts, yield)
			return
		}
		p.readLogs(ctx, name, opts, yield)
	}
}

func logOptions(container string, opts provider.LogOptions, follow bool) *corev1.PodLogOptions {
	lo := &corev1.PodLogOptions{Container: container, Follow: follow, Timestamps: true}
	if opts.Tail >= 0 {
		n := int64(opts.Tail)
		lo.TailLines = &n
	}
	if !opts.Since.IsZero() {
		t := metav1.NewTime(opts.Since)
		lo.SinceTime = &t
	}
	return lo
}

// readLogs reads every pod's log to its end and yields the lines in time
// order. A pod that could not be read ends the stream with its error after
// the lines of the others.
func (p *Provider) readLogs(ctx context.Context, name string, opts provider.LogOptions, yield func(workload.LogLine, error) bool) {
	var lines []workload.LogLine
	var firstErr error
	for _, pod := range p.cache.podsOf(name) {
		rc, err := p.kube.CoreV1().Pods(p.opts.Namespace).GetLogs(pod.Name, logOptions(containerFor(pod, name), opts, false)).Stream(ctx)
		if err != nil {
			if waitingToStart(err) || classify(err) == workload.NotFound {
				continue
			}
			if firstErr == nil {
				firstErr = provider.Wrap(Name, p.classified, err, "logs of pod "+pod.Name)
			}
			continue
		}
		err = scanLog(rc, pod.Name, time.Time{}, func(l workload.LogLine) bool { lines = append(lines, l); return true })
		rc.Close()
		if err != nil && firstErr == nil && ctx.Err() == nil {
			firstErr = provider.Wrap(Name, p.classified, err, "logs of pod "+pod.Name)
		}
	}
	slices.SortStableFunc(lines, func(a, b workload.LogLine) int { return a.Time.Compare(b.Time) })
	for _, l := range lines {
		if !yield(l, nil) {
			return
		}
	}
	if firstErr != nil && ctx.Err() == nil {
		yield(workload.LogLine{}, firstErr)
	}
}

// waitingToStart reports whether a log request was refused because the
// container has not started (400 "container ... is waiting to start").
func waitingToStart(err error) bool {
	return classify(err) == workload.InvalidArgument && strings.Contains(err.Error(), "waiting to start")
}

type logItem struct {
	line workload.LogLine
	err  error
}

// followLogs follows every pod of a service, and the pods that appear,
// until ctx ends or the caller stops.
func (p *Provider) followLogs(ctx context.Context, name string, opts provider.LogOptions, yield func(workload.LogLine, error) bool) {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	items := make(chan logItem, 256)
	followed := map[string]bool{}
	initial := true
	for {
		changed := p.cache.changedCh(name)
		for _, pod := range p.cache.podsOf(name) {
			if followed[pod.Name] || (!initial && pod.DeletionTimestamp != nil) {
				continue
			}
			followed[pod.Name] = true
			o := opts
			if !initial {
				// A pod that appeared after the call: all of its lines
				// are new.
				o = provider.LogOptions{Tail: -1}
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				p.followPod(ctx, name, pod, o, items)
			}()
		}
		initial = false
	wait:
		for {
			select {
			case <-ctx.Done():
				return
			case <-changed:
				break wait
			case it := <-items:
				if it.err != nil {
					yield(workload.LogLine{}, it.err)
					return
				}
				if !yield(it.line, nil) {
					return
				}
			}
		}
	}
}

// followPod follows one pod's log, resuming after its last line when the
// stream ends while the pod lives on (a container restart, a broken
// connection), until the pod is gone or ctx ends.
func (p *Provider) followPod(ctx context.Context, service string, pod *corev1.Pod, opts provider.LogOptions, out chan<- logItem) {
	send := func(it logItem) bool {
		select {
		case out <- it:
			return true
		case <-ctx.Done():
			return false
		}
	}
	container := containerFor(pod, service)
	var last time.Time
	lo := logOptions(container, opts, true)
	for attempt := 0; ; attempt++ {
		rc, err := p.kube.CoreV1().Pods(p.opts.Namespace).GetLogs(pod.Name, lo).Stream(ctx)
		if err != nil {
			switch {
			case ctx.Err() != nil, classify(err) == workload.NotFound:
				return
			case !waitingToStart(err):
				send(logItem{err: provider.Wrap(Name, p.classified, err, "logs of pod "+pod.Name)})
				return
			}
		} else {
			err = scanLog(rc, pod.Name, last, func(l workload.LogLine) bool {
				last = l.Time
				return send(logItem{line: l})
			})
			rc.Close()
			if ctx.Err() != nil {
				return
			}
		}
		if !p.podAlive(service, pod.Name) {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(min(time.Duration(attempt+1)*250*time.Millisecond, 2*time.Second)):
		}
		// Resume: the API server's sinceTime counts whole seconds, so
		// lines up to the last one seen are skipped by scanLog.
		lo = logOptions(container, provider.LogOptions{Tail: -1}, true)
		if !last.IsZero() {
			t := metav1.NewTime(last)
			lo.SinceTime = &t
		}
	}
}

// podAlive reports whether a pod is still in the cache and not deleted.
func (p *Provider) podAlive(service, pod string) bool {
	for _, x := range p.cache.podsOf(service) {
		if x.Name == pod {
			return x.DeletionTimestamp == nil
		}
	}
	return false
}

// scanLog reads a log with timestamps, calling emit for each line newer
// than after, until EOF (nil) or a read error.
func scanLog(r io.Reader, pod string, after time.Time, emit func(workload.LogLine) bool) error {
	br := bufio.NewReaderSize(r, 64<<10)
	for {
		s, err := readLine(br)
		if s != "" || err == nil {
			l := parseLogLine(pod, s)
			if after.IsZero() || l.Time.After(after) {
				if !emit(l) {
					return nil
				}
			}
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
	}
}

// readLine reads one line without its newline, cutting it at maxLogLine.
func readLine(br *bufio.Reader) (string, error) {
	var b strings.Builder
	for {
		frag, isPrefix, err := br.ReadLine()
		if b.Len() < maxLogLine {
			b.Write(frag[:min(len(frag), maxLogLine-b.Len())])
		}
		if err != nil || !isPrefix {
			return b.String(), err
		}
	}
}

// parseLogLine splits the API server's "RFC3339Nano text" line.
func parseLogLine(pod, s string) workload.LogLine {
	l := workload.LogLine{Instance: pod, Stream: "stdout", Text: s}
	if ts, text, ok := strings.Cut(s, " "); ok {
		if t, err := time.Parse(time.RFC3339Nano, ts); err == nil {
			l.Time, l.Text = t.UTC(), text
			return l
		}
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		l.Time, l.Text = t.UTC(), ""
		return l
	}
	l.Time = time.Now().UTC()
	return l
}
