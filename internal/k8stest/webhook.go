package k8stest

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	authnv1 "k8s.io/api/authentication/v1"
)

// TokenAuthenticator decides a bearer token that the API server's own
// authenticators (the static token file, service-account tokens) do not
// know, the way a webhook token authenticator does on EKS, AKS or GKE. It
// returns the user and groups the token stands for, or ok false.
type TokenAuthenticator func(ctx context.Context, token string) (user string, groups []string, ok bool)

// tokenWebhook is the in-process HTTPS server the API server consults
// (--authentication-token-webhook-config-file) for the tokens it does not
// know. It asks each registered TokenAuthenticator in turn.
type tokenWebhook struct {
	srv *http.Server
	ln  net.Listener

	mu     sync.Mutex
	next   int
	authns map[int]TokenAuthenticator
}

// startTokenWebhook serves TokenReviews on 127.0.0.1 with a certificate of
// pk and writes the kubeconfig that points the API server at it; it returns
// the kubeconfig's path.
func startTokenWebhook(pk *pki, dir string) (*tokenWebhook, string, error) {
	certFile, keyFile, err := pk.serving("token-webhook", "127.0.0.1")
	if err != nil {
		return nil, "", err
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, "", err
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
	if err != nil {
		return nil, "", err
	}
	w := &tokenWebhook{ln: ln, authns: map[int]TokenAuthenticator{}}
	w.srv = &http.Server{Handler: http.HandlerFunc(w.review), ReadHeaderTimeout: 10 * time.Second}
	go w.srv.Serve(ln) //nolint:errcheck // ends with ErrServerClosed at stop

	kubeconfig := filepath.Join(dir, "token-webhook.kubeconfig")
	cfg := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: token-webhook
  cluster:
    server: %q
    certificate-authority: %q
users:
- name: apiserver
  user: {}
contexts:
- name: webhook
  context:
    cluster: token-webhook
    user: apiserver
current-context: webhook
`, "https://"+ln.Addr().String()+"/authenticate", pk.caFile)
	if err := os.WriteFile(kubeconfig, []byte(cfg), 0o600); err != nil {
		w.stop()
		return nil, "", err
	}
	return w, kubeconfig, nil
}

func (w *tokenWebhook) stop() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	w.srv.Shutdown(ctx) //nolint:errcheck // best effort at teardown
}

// review answers one TokenReview (authentication.k8s.io/v1).
func (w *tokenWebhook) review(rw http.ResponseWriter, r *http.Request) {
	var tr authnv1.TokenReview
	if err := json.NewDecoder(http.MaxBytesReader(rw, r.Body, 1<<20)).Decode(&tr); err != nil {
		http.Error(rw, "bad TokenReview: "+err.Error(), http.StatusBadRequest)
		return
	}
	w.mu.Lock()
	authns := make([]TokenAuthenticator, 0, len(w.authns))
	for i := 0; i < w.next; i++ {
		if a, ok := w.authns[i]; ok {
			authns = append(authns, a)
		}
	}
	w.mu.Unlock()
	out := authnv1.TokenReview{TypeMeta: tr.TypeMeta}
	if out.APIVersion == "" {
		out.APIVersion, out.Kind = "authentication.k8s.io/v1", "TokenReview"
	}
	for _, a := range authns {
		if user, groups, ok := a(r.Context(), tr.Spec.Token); ok {
			out.Status = authnv1.TokenReviewStatus{
				Authenticated: true,
				User:          authnv1.UserInfo{Username: user, UID: user, Groups: groups},
				Audiences:     tr.Spec.Audiences,
			}
			break
		}
	}
	if !out.Status.Authenticated {
		out.Status.Error = "no k8stest token authenticator accepted the token"
	}
	rw.Header().Set("Content-Type", "application/json")
	json.NewEncoder(rw).Encode(&out) //nolint:errcheck // the API server retries
}

// AddTokenAuthenticator makes the API server accept the bearer tokens a
// decides, until the end of t. The webhook's own cache is off, but the API
// server keeps a token's success for 10 s in front of all its token
// authenticators (its TokenSuccessCacheTTL, which no flag sets): a token
// accepted once stays accepted that long, even past a's verdict. Refusals
// are not cached.
func (c *Cluster) AddTokenAuthenticator(t testing.TB, a TokenAuthenticator) {
	t.Helper()
	w := c.webhook
	if w == nil {
		t.Fatal("k8stest: this control plane has no token webhook")
	}
	w.mu.Lock()
	id := w.next
	w.next++
	w.authns[id] = a
	w.mu.Unlock()
	t.Cleanup(func() {
		w.mu.Lock()
		delete(w.authns, id)
		w.mu.Unlock()
	})
}
