// Command workload is the test image of the docker provider's tests: a
// static binary run FROM scratch.
//
//	workload [serve]        HTTP server on $PORT (default 8080)
//	workload echo ARGS...   print ARGS
//	workload exit N         exit with status N
//	workload cat FILE       print FILE (exit 1 if it is missing)
//	workload env            print the environment
//	workload get URL        GET URL, print the body (exit 1 unless 2xx)
//	workload stdin          copy stdin to stdout, then print "stdin closed"
//
// The server prints "workload: listening on :PORT" when it starts and
// exits 0 on SIGTERM or SIGINT. Its endpoints:
//
//	/healthz        200 "ok"
//	/env            the environment
//	/config         every file of $ALPHASWARM_CONFIG_DIR as key=value
//	/log?text=T     prints T to stdout (and to stderr with &stderr=1)
//	/burn?ms=N      burns one core for N milliseconds
package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	args := os.Args[1:]
	if len(args) == 0 {
		args = []string{"serve"}
	}
	switch args[0] {
	case "serve":
		serve()
	case "echo":
		fmt.Println(strings.Join(args[1:], " "))
	case "exit":
		n := 0
		if len(args) > 1 {
			n, _ = strconv.Atoi(args[1])
		}
		os.Exit(n)
	case "cat":
		if len(args) < 2 {
			fmt.Fprintln(os.Stderr, "usage: workload cat FILE")
			os.Exit(2)
		}
		b, err := os.ReadFile(args[1])
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Stdout.Write(b)
	case "env":
		printEnv(os.Stdout)
	case "get":
		if len(args) < 2 {
			fmt.Fprintln(os.Stderr, "usage: workload get URL")
			os.Exit(2)
		}
		c := http.Client{Timeout: 5 * time.Second}
		resp, err := c.Get(args[1])
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		defer resp.Body.Close()
		io.Copy(os.Stdout, resp.Body)
		if resp.StatusCode/100 != 2 {
			os.Exit(1)
		}
	case "stdin":
		io.Copy(os.Stdout, os.Stdin)
		fmt.Println("stdin closed")
	default:
		fmt.Fprintf(os.Stderr, "workload: unknown command %q\n", args[0])
		os.Exit(2)
	}
}

func printEnv(w io.Writer) {
	env := os.Environ()
	sort.Strings(env)
	for _, kv := range env {
		fmt.Fprintln(w, kv)
	}
}

func serve() {
	port := os.Getenv("PORT")
	if port == "" {
		port = "8080"
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("/env", func(w http.ResponseWriter, r *http.Request) { printEnv(w) })
	mux.HandleFunc("/config", func(w http.ResponseWriter, r *http.Request) {
		dir := os.Getenv("ALPHASWARM_CONFIG_DIR")
		entries, _ := os.ReadDir(dir)
		for _, e := range entries {
			b, err := os.ReadFile(filepath.Join(dir, e.Name()))
			if err == nil {
				fmt.Fprintf(w, "%s=%s\n", e.Name(), b)
			}
		}
	})
	mux.HandleFunc("/log", func(w http.ResponseWriter, r *http.Request) {
		text := r.URL.Query().Get("text")
		fmt.Println(text)
		if r.URL.Query().Get("stderr") != "" {
			fmt.Fprintln(os.Stderr, text)
		}
		fmt.Fprintln(w, "logged")
	})
	mux.HandleFunc("/burn", func(w http.ResponseWriter, r *http.Request) {
		ms, _ := strconv.Atoi(r.URL.Query().Get("ms"))
		deadline := time.Now().Add(time.Duration(ms) * time.Millisecond)
		x := 0
		for time.Now().Before(deadline) {
			for i := 0; i < 10000; i++ {
				x += i
			}
		}
		fmt.Fprintln(w, "burned", x%2)
	})
	srv := &http.Server{Addr: ":" + port, Handler: mux}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		s := <-sig
		fmt.Printf("workload: %v, exiting\n", s)
		os.Exit(0)
	}()
	fmt.Printf("workload: listening on :%s\n", port)
	if err := srv.ListenAndServe(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
