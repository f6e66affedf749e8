package httpapi

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/alphaswarm/controller/ledger"
)

// TestRunEncodesAsTheLedgerRecord: api.Run is a copy of ledger.Record's
// wire form. With every field of a record set, the served row encodes to
// the same JSON, so a field added to the ledger and not to the wire (or
// renamed on one side) fails here.
func TestRunEncodesAsTheLedgerRecord(t *testing.T) {
	var rec ledger.Record
	v := reflect.ValueOf(&rec).Elem()
	for i := range v.NumField() {
		f := v.Field(i)
		switch f.Kind() {
		case reflect.String:
			f.SetString("v-" + v.Type().Field(i).Name)
		case reflect.Int, reflect.Int64:
			f.SetInt(int64(i + 1))
		case reflect.Struct:
			f.Set(reflect.ValueOf(time.Date(2026, 12, 5, 1, 2, 3, 4, time.UTC)))
		default:
			t.Fatalf("ledger.Record.%s: kind %s not filled by this test; extend it", v.Type().Field(i).Name, f.Kind())
		}
	}
	want, err := json.Marshal(rec)
	if err != nil {
		t.Fatal(err)
	}
	got, err := json.Marshal(runOf(rec))
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(want) {
		t.Errorf("served row differs from the ledger record:\n got %s\nwant %s", got, want)
	}
}
