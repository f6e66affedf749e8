package workload

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// maxKeyDepth bounds the nesting DuplicateKeys follows, like
// encoding/json's own limit.
const maxKeyDepth = 10000

// DuplicateKeys returns one FieldError for every object key that appears
// twice in the same object of the JSON document b, anywhere in it, with
// its path (prefixed by path). encoding/json keeps the last of them
// silently; every decoder of requests, spec files and the config file
// refuses them instead. Keys are compared exactly, as UnknownFields
// compares them with field names. b is expected to be valid JSON (decode
// it first); a syntax error ends the walk with what was found so far.
func DuplicateKeys(b []byte, path string) []FieldError {
	w := keyWalker{dec: json.NewDecoder(bytes.NewReader(b))}
	_ = w.value(path, 0)
	return w.errs
}

type keyWalker struct {
	dec  *json.Decoder
	errs []FieldError
}

func (w *keyWalker) value(path string, depth int) error {
	tok, err := w.dec.Token()
	if err != nil {
		return err
	}
	d, ok := tok.(json.Delim)
	if !ok {
		return nil
	}
	if depth >= maxKeyDepth {
		return fmt.Errorf("exceeded max depth %d", maxKeyDepth)
	}
	switch d {
	case '{':
		seen := map[string]bool{}
		for w.dec.More() {
			kt, err := w.dec.Token()
			if err != nil {
				return err
			}
			k, _ := kt.(string)
			p := joinPath(path, k)
			if seen[k] {
				w.errs = append(w.errs, FieldError{p, "duplicate key: each key may appear once"})
			}
			seen[k] = true
			if err := w.value(p, depth+1); err != nil {
				return err
			}
		}
	case '[':
		for i := 0; w.dec.More(); i++ {
			if err := w.value(fmt.Sprintf("%s[%d]", path, i), depth+1); err != nil {
				return err
			}
		}
	}
	_, err = w.dec.Token() // the closing delimiter
	return err
}

func joinPath(path, k string) string {
	if path == "" {
		return k
	}
	return path + "." + k
}
