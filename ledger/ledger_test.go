package ledger_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/alphaswarm/controller/ledger"
)

func sample() ledger.Record {
	return ledger.Record{Seq: 7, RunID: "r1", Kind: ledger.KindResult, UserID: "oidc:https://idp.example#u1",
		Auth: "oidc:https://idp.example", UserName: "ann@example.com", Action: "scale", Target: "t", Service: "s",
		Provider: "docker", RequestDigest: "d", IdempotencyKey: "k", Outcome: ledger.OutcomeOK, ErrorCode: "",
		Message: "m", Detail: "{}", Duration: 5, Time: time.Unix(0, 42).UTC(), PrevHash: "p"}
}

// TestCanonicalV1Unchanged pins the version-1 encoding byte for byte: rows
// sealed before version 2 existed must hash as they did.
func TestCanonicalV1Unchanged(t *testing.T) {
	r := sample()
	r.Version, r.Auth, r.UserName = 1, "", ""
	want := `["workload_runs/v1",7,"r1","result","oidc:https://idp.example#u1","scale","t","s","docker","d","k","ok","","m","{}",5,42,"p"]`
	if got := string(r.Canonical()); got != want {
		t.Fatalf("v1 canonical =\n%s\nwant\n%s", got, want)
	}
}

// TestCanonicalV2CoversPrincipal: version 2 hashes auth and user_name, so
// changing either breaks the row; a sealed row is version 2.
func TestCanonicalV2CoversPrincipal(t *testing.T) {
	v2 := sample()
	v2.Version = 2
	r := ledger.Seal(v2, nil)
	want := `["workload_runs/v2",1,"r1","result","oidc:https://idp.example#u1","oidc:https://idp.example","ann@example.com","scale","t","s","docker","d","k","ok","","m","{}",5,42,"` + ledger.GenesisHash + `"]`
	if got := string(r.Canonical()); got != want {
		t.Fatalf("v2 canonical =\n%s\nwant\n%s", got, want)
	}
	for name, change := range map[string]func(*ledger.Record){
		"auth":      func(r *ledger.Record) { r.Auth = "token:abc" },
		"user_name": func(r *ledger.Record) { r.UserName = "bob@example.com" },
		"user_id":   func(r *ledger.Record) { r.UserID = "ann" },
		"version":   func(r *ledger.Record) { r.Version = 3 },
	} {
		c := r
		change(&c)
		if c.ComputeHash() == r.Hash {
			t.Errorf("changing %s keeps the hash", name)
		}
	}
}

// TestCanonicalV3CoversPolicyDigest: version 3 hashes the policy bundle's
// digest, so changing it breaks the row; a sealed row is version 3, and a
// version-2 row that carries a digest does not verify.
func TestCanonicalV3CoversPolicyDigest(t *testing.T) {
	in := sample()
	in.PolicyDigest = "sha256:ab"
	r := ledger.Seal(in, nil)
	if r.Version != ledger.CurrentVersion || ledger.CurrentVersion != 3 {
		t.Fatalf("sealed version %d (current %d), want 3", r.Version, ledger.CurrentVersion)
	}
	want := `["workload_runs/v3",1,"r1","result","oidc:https://idp.example#u1","oidc:https://idp.example","ann@example.com","scale","t","s","docker","d","k","ok","","m","{}","sha256:ab",5,42,"` + ledger.GenesisHash + `"]`
	if got := string(r.Canonical()); got != want {
		t.Fatalf("v3 canonical =\n%s\nwant\n%s", got, want)
	}
	c := r
	c.PolicyDigest = "sha256:cd"
	if c.ComputeHash() == r.Hash {
		t.Error("changing policy_digest keeps the hash")
	}
	// A version-2 row never covered a digest: one that has it was written
	// afterwards, even with a recomputed hash.
	v2 := sample()
	v2.Version = 2
	v2 = ledger.Seal(v2, nil)
	v2.PolicyDigest = "sha256:ab"
	v2.Hash = v2.ComputeHash()
	res, err := ledger.VerifyChain(func(yield func(ledger.Record, error) bool) { yield(v2, nil) })
	if err != nil || res.OK || !strings.Contains(res.Reason, "policy_digest") {
		t.Fatalf("a version-2 row with a policy digest: %+v %v", res, err)
	}
}

// TestVersionZeroIsV1: a record without a version (decoded from JSON
// written before the field existed) hashes as version 1.
func TestVersionZeroIsV1(t *testing.T) {
	r := sample()
	r.Auth, r.UserName = "", ""
	v1 := r
	v1.Version = 1
	if string(r.Canonical()) != string(v1.Canonical()) {
		t.Fatal("version 0 does not encode as version 1")
	}
}

// TestOpenUnknownSchemeHintsAtImport: like provider.Open, an unknown
// scheme lists the registered ones and names the usual cause.
func TestOpenUnknownSchemeHintsAtImport(t *testing.T) {
	_, err := ledger.Open(context.Background(), "mysql://db/ledger")
	if err == nil || !strings.Contains(err.Error(), `scheme "mysql"`) || !strings.Contains(err.Error(), "is its package imported?") ||
		!strings.Contains(err.Error(), "registered: ") {
		t.Fatalf("Open(mysql://) = %v", err)
	}
}
