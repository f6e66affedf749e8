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
	if !hasDuplicateKeys(b) {
		return nil // the common case, without json.Decoder's allocations
	}
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

// smallObject is how many keys an object may have before hasDuplicateKeys
// indexes them in a map instead of comparing each new key with the others.
const smallObject = 16

type keyFrame struct {
	obj  bool
	keys [][]byte
	set  map[string]struct{} // once keys outgrows smallObject
}

// hasDuplicateKeys reports whether an object of the JSON document b
// repeats a key. It scans bytes without decoding values and allocates
// only for escaped keys and large objects; DuplicateKeys then finds the
// paths with a full walk. On malformed input it returns whatever it found.
func hasDuplicateKeys(b []byte) bool {
	var stack []keyFrame
	var spare [][][]byte // key slices of closed objects, for reuse
	for i := 0; i < len(b); {
		switch b[i] {
		case '{':
			var keys [][]byte
			if n := len(spare); n > 0 {
				keys, spare = spare[n-1][:0], spare[:n-1]
			}
			stack = append(stack, keyFrame{obj: true, keys: keys})
			i++
		case '[':
			stack = append(stack, keyFrame{})
			i++
		case '}', ']':
			if n := len(stack); n > 0 {
				if stack[n-1].keys != nil {
					spare = append(spare, stack[n-1].keys)
				}
				stack = stack[:n-1]
			}
			i++
		case '"':
			start, escaped := i, false
			j := i + 1
			for j < len(b) && b[j] != '"' {
				if b[j] == '\\' {
					escaped = true
					j++
				}
				j++
			}
			if j >= len(b) {
				return false
			}
			i = j + 1
			k := i
			for k < len(b) && (b[k] == ' ' || b[k] == '\t' || b[k] == '\n' || b[k] == '\r') {
				k++
			}
			n := len(stack)
			if k >= len(b) || b[k] != ':' || n == 0 || !stack[n-1].obj {
				continue // a value, not a key
			}
			key := b[start+1 : j]
			if escaped {
				var s string
				if json.Unmarshal(b[start:j+1], &s) != nil {
					return false
				}
				key = []byte(s)
			}
			f := &stack[n-1]
			if f.set != nil {
				if _, dup := f.set[string(key)]; dup {
					return true
				}
				f.set[string(key)] = struct{}{}
				continue
			}
			for _, prev := range f.keys {
				if bytes.Equal(prev, key) {
					return true
				}
			}
			f.keys = append(f.keys, key)
			if len(f.keys) > smallObject {
				f.set = make(map[string]struct{}, 2*smallObject)
				for _, k := range f.keys {
					f.set[string(k)] = struct{}{}
				}
			}
		default:
			i++
		}
	}
	return false
}
