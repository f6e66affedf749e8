package docker

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"iter"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/client"

	"github.com/alphaswarm/controller/provider"
	"github.com/alphaswarm/controller/workload"
)

// Logs implements provider.LogTailer: the output of every replica of the
// service (running or exited), demultiplexed into stdout and stderr lines
// and tagged with the replica's instance id. Without Follow the lines of
// all replicas are merged in time order and the stream ends; with Follow
// it goes on, picking up replicas that start later (a restart's new
// instances), until ctx ends or the service is stopped.
func (p *Provider) Logs(ctx context.Context, name string, opts provider.LogOptions) iter.Seq2[workload.LogLine, error] {
	return func(yield func(workload.LogLine, error) bool) {
		if err := workload.CheckName("name", name); err != nil {
			yield(workload.LogLine{}, err)
			return
		}
		if err := p.cache.waitReady(ctx); err != nil {
			yield(workload.LogLine{}, err)
			return
		}
		sub, unsubscribe := p.cache.subs.Subscribe(name)
		defer unsubscribe()
		_, insts, ok := p.cache.snapshot(name)
		if !ok {
			yield(workload.LogLine{}, provider.NotFound(Name, "service %s not found on docker target %s", name, p.target))
			return
		}
		ctx, cancel := context.WithCancel(ctx)
		var wg sync.WaitGroup
		defer func() {
			cancel()
			wg.Wait()
		}()
		lines := make(chan workload.LogLine, 256)
		errs := make(chan error, 1)
		tailing := map[string]bool{}
		tail := func(in instance, tailN string, since time.Time) {
			tailing[in.id] = true
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := p.tailContainer(ctx, in, opts.Follow, tailN, since, lines); err != nil {
					select {
					case errs <- err:
					default:
					}
				}
			}()
		}
		tailN := "all"
		if opts.Tail >= 0 {
			tailN = strconv.Itoa(opts.Tail)
		}
		for _, in := range insts {
			tail(in, tailN, opts.Since)
		}
		if !opts.Follow {
			go func() {
				wg.Wait()
				close(lines)
			}()
			var all []workload.LogLine
			for l := range lines {
				all = append(all, l)
			}
			select {
			case err := <-errs:
				yield(workload.LogLine{}, err)
				return
			default:
			}
			slices.SortStableFunc(all, func(a, b workload.LogLine) int { return a.Time.Compare(b.Time) })
			for _, l := range all {
				if !yield(l, nil) {
					return
				}
			}
			return
		}
		for {
			select {
			case <-ctx.Done():
				return
			case err := <-errs:
				yield(workload.LogLine{}, err)
				return
			case l := <-lines:
				if !yield(l, nil) {
					return
				}
			case <-sub.Wake():
				sub.Take()
				_, insts, ok := p.cache.snapshot(name)
				if !ok {
					// Drain what the replicas already said, then end.
					for {
						select {
						case l := <-lines:
							if !yield(l, nil) {
								return
							}
						default:
							return
						}
					}
				}
				for _, in := range insts {
					if !tailing[in.id] {
						// A replica that appeared while following: all
						// of its output is new.
						tail(in, "all", opts.Since)
					}
				}
			}
		}
	}
}

// tailContainer streams one container's log lines into out. A container
// removed while being followed simply ends its part of the stream; an
// Engine gone away is an error.
func (p *Provider) tailContainer(ctx context.Context, in instance, follow bool, tailN string, since time.Time, out chan<- workload.LogLine) error {
	o := client.ContainerLogsOptions{ShowStdout: true, ShowStderr: true, Timestamps: true, Follow: follow, Tail: tailN}
	if !since.IsZero() {
		o.Since = fmt.Sprintf("%d.%09d", since.Unix(), since.Nanosecond())
	}
	rc, err := p.eng.ContainerLogs(ctx, in.id, o)
	if err != nil {
		if c := classify(err); ctx.Err() == nil && (c == workload.Unavailable || c == workload.Timeout) {
			return provider.Wrap(Name, p.classifier, err, "logs of "+in.name)
		}
		return nil
	}
	defer rc.Close()
	id := shortID(in.id)
	stdout := &lineWriter{ctx: ctx, out: out, instance: id, stream: "stdout"}
	stderr := &lineWriter{ctx: ctx, out: out, instance: id, stream: "stderr"}
	if in.tty {
		_, err = io.Copy(stdout, rc)
	} else {
		_, err = stdcopy.StdCopy(stdout, stderr, rc)
	}
	stdout.flush()
	stderr.flush()
	if err != nil && ctx.Err() == nil {
		if c := classify(err); c == workload.Unavailable {
			return provider.Wrap(Name, p.classifier, err, "logs of "+in.name)
		}
	}
	return nil
}

// lineWriter splits a stream into timestamped lines.
type lineWriter struct {
	ctx      context.Context
	out      chan<- workload.LogLine
	instance string
	stream   string
	buf      []byte
}

func (w *lineWriter) Write(b []byte) (int, error) {
	w.buf = append(w.buf, b...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			break
		}
		line := string(w.buf[:i])
		w.buf = w.buf[i+1:]
		if err := w.emit(line); err != nil {
			return 0, err
		}
	}
	if len(w.buf) > 64<<10 { // an endless line: pass it on in pieces
		line := string(w.buf)
		w.buf = w.buf[:0]
		if err := w.emit(line); err != nil {
			return 0, err
		}
	}
	return len(b), nil
}

func (w *lineWriter) flush() {
	if len(w.buf) > 0 {
		_ = w.emit(string(w.buf))
		w.buf = nil
	}
}

func (w *lineWriter) emit(line string) error {
	l := workload.LogLine{Instance: w.instance, Stream: w.stream}
	ts, text, ok := strings.Cut(line, " ")
	if t, err := time.Parse(time.RFC3339Nano, ts); ok && err == nil {
		l.Time, l.Text = t, text
	} else {
		l.Time, l.Text = time.Now().UTC(), line
	}
	l.Text = strings.TrimSuffix(l.Text, "\r")
	select {
	case w.out <- l:
		return nil
	case <-w.ctx.Done():
		return w.ctx.Err()
	}
}
