package checkpoint

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/alphaswarm/controller/ledger"
)

// TestRowLineMatchesEncodingJSON: the fast row encoder writes exactly what
// encoding/json writes, for every field (a field added to ledger.Record
// without being added to appendRowLine fails here).
func TestRowLineMatchesEncodingJSON(t *testing.T) {
	full := ledger.Record{Seq: 42, RunID: "run_1", Kind: ledger.KindResult, UserID: "oidc:https://idp#sub", Auth: "oidc:https://idp",
		UserName: "Zoë <z@example.com>", Action: "scale", Target: "prod", Service: "web", Provider: "docker",
		RequestDigest: "ab", IdempotencyKey: "k\u2028\u2029", Outcome: ledger.OutcomeError, ErrorCode: "timeout",
		Message: "line1\nline2\t\"quoted\" \\ back & <tag> \x00\x1f\x7f bad:\xff\xfe end", Detail: `{"replicas":3}`,
		PolicyDigest: "sha256:00ff", Duration: 123456789, Time: time.Date(2026, 12, 4, 22, 0, 0, 123456000, time.UTC), PrevHash: "p", Hash: "h", Version: 3}
	// Every field must be set, so that none is left out unnoticed.
	v := reflect.ValueOf(full)
	for i := range v.NumField() {
		if v.Field(i).IsZero() {
			t.Fatalf("test record leaves ledger.Record.%s unset", v.Type().Field(i).Name)
		}
	}
	for _, r := range []ledger.Record{full, {Seq: 1, Time: time.Unix(0, 1).UTC()}, {Seq: 2, Kind: ledger.KindIntent, Time: time.Now()}} {
		want, err := json.Marshal(Line{Type: "row", Row: &r})
		if err != nil {
			t.Fatal(err)
		}
		if got := appendRowLine(nil, &r); string(got) != string(want) {
			t.Fatalf("appendRowLine:\n got %s\nwant %s", got, want)
		}
	}
}

func BenchmarkRowLine(b *testing.B) {
	r := ledger.Record{Seq: 1234, RunID: "run_0123456789abcdef01234567", Kind: ledger.KindResult, UserID: "alice", Action: "scale",
		Target: "local", Service: "svc-12", Provider: "memory", RequestDigest: "ab12cd34", Outcome: "ok",
		Detail: `{"status":{"id":"local/svc-12","phase":"Running"}}`, Duration: 12345, Time: time.Now(), PrevHash: "ab", Hash: "cd"}
	b.Run("encoding-json", func(b *testing.B) {
		for b.Loop() {
			json.Marshal(Line{Type: "row", Row: &r})
		}
	})
	b.Run("appendRowLine", func(b *testing.B) {
		var buf []byte
		for b.Loop() {
			buf = appendRowLine(buf[:0], &r)
		}
	})
}
