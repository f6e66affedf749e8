package dashboard_test

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

func percentile(ds []time.Duration, p float64) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(float64(len(s)-1) * p)
	return s[i]
}

func reportLatencies(b *testing.B, ds []time.Duration) {
	b.ReportMetric(float64(percentile(ds, 0.5).Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(percentile(ds, 0.95).Microseconds())/1000, "p95-ms")
	b.ReportMetric(float64(slices.Max(ds).Microseconds())/1000, "max-ms")
}

// BenchmarkPageLoad200 loads the services page over loopback as a cold
// browser would, without the browser: the shell, its stylesheet and
// modules, and the fragment with 200 services (rendered from the API with
// the caller's token).
func BenchmarkPageLoad200(b *testing.B) {
	e := newEnv(b, envOptions{})
	e.deploy(b, names(200)...)
	var ds []time.Duration
	b.ResetTimer()
	for b.Loop() {
		start := time.Now()
		for _, p := range []string{"/", "/ui/assets/app.css", "/ui/assets/services.js", "/ui/assets/app.js"} {
			if r := e.get(b, "", p); r.status != 200 {
				b.Fatalf("%s: %d", p, r.status)
			}
		}
		r := e.get(b, "viewer", "/ui/frag/services")
		if r.status != 200 || strings.Count(r.body, "<tr data-id=") != 200 {
			b.Fatalf("fragment: %d", r.status)
		}
		ds = append(ds, time.Since(start))
	}
	reportLatencies(b, ds)
}

// BenchmarkBrowserPageLoad200 measures, in headless Chromium, the time
// from navigation start to the 200 rows rendered (a performance mark the
// services page sets once its table is in the document).
func BenchmarkBrowserPageLoad200(b *testing.B) {
	e := newEnv(b, envOptions{})
	e.deploy(b, names(200)...)
	br := newBrowser(b, 1280, 800)
	br.signIn(e, "viewer")
	var ds []time.Duration
	b.ResetTimer()
	for b.Loop() {
		br.nav(e.url + "/")
		br.wait("200 rows", `performance.getEntriesByName('services-rendered').length > 0 && document.querySelectorAll('#services-table tbody tr').length === 200`, 10*time.Second)
		ms := evalAs[float64](br, `performance.getEntriesByName('services-rendered')[0].startTime`)
		ds = append(ds, time.Duration(ms*float64(time.Millisecond)))
	}
	reportLatencies(b, ds)
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkServicesSSE200 holds one /v1/services/events connection for
// 200 services, the one the services page opens, and reports the process's
// CPU time per second of wall time (getrusage: the server, the in-memory
// provider and this reader; nothing else runs). "idle" has no changes;
// "churn" scales 10 or 100 services a second behind the API's back, as another
// controller or the backend would. Each op is one second.
func BenchmarkServicesSSE200(b *testing.B) {
	for _, churn := range []int{0, 10, 100} {
		name := "idle"
		if churn > 0 {
			name = fmt.Sprintf("churn=%d/s", churn)
		}
		b.Run(name, func(b *testing.B) {
			e := newEnv(b, envOptions{})
			svcs := names(200)
			e.deploy(b, svcs...)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			req, _ := http.NewRequestWithContext(ctx, "GET", e.url+"/v1/services/events", nil)
			req.Header.Set("Authorization", "Bearer "+e.tokens["viewer"])
			opened := time.Now()
			// No client timeout: it would end the stream.
			resp, err := (&http.Client{Transport: e.client.Transport}).Do(req)
			if err != nil {
				b.Fatal(err)
			}
			defer resp.Body.Close()
			events := make(chan int, 1024)
			go func() {
				defer close(events)
				sc := bufio.NewScanner(resp.Body)
				for sc.Scan() {
					if l := sc.Text(); strings.HasPrefix(l, "data: ") {
						events <- len(l)
					}
				}
			}()
			ids := 0
			for ids < 200 {
				if _, ok := <-events; !ok {
					b.Fatal("stream ended")
				}
				ids++
			}
			first200 := time.Since(opened)
			var count, bytes int
			cpu0, wall0 := cpuTime(), time.Now()
			i := 0
			b.ResetTimer()
			for b.Loop() {
				end := time.Now().Add(time.Second)
				if churn > 0 {
					for j := range churn {
						n := svcs[(i*churn+j)%len(svcs)]
						// Every pass over the 200 changes each one: 2, 3, 2…
						if _, err := e.mem.Scale(ctx, n, 2+(i*churn/len(svcs))%2); err != nil {
							b.Fatal(err)
						}
					}
					i++
				}
				for wait := time.Until(end); wait > 0; wait = time.Until(end) {
					select {
					case n, ok := <-events:
						if !ok {
							b.Fatal("stream ended")
						}
						count++
						bytes += n
					case <-time.After(wait):
					}
				}
			}
			wall := time.Since(wall0).Seconds()
			b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/1000/wall, "cpu-ms/s")
			b.ReportMetric(float64(count)/wall, "events/s")
			b.ReportMetric(float64(first200.Microseconds())/1000, "first-200-ms")
			b.ReportMetric(float64(bytes)/1024/wall, "KiB/s")
			cancel()
			for range events {
			}
		})
	}
}
