package fakeazure

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"
)

type settingID struct{ key, label string }

// setting is an App Configuration key-value (REST field names).
type setting struct {
	Key          string            `json:"key"`
	Label        *string           `json:"label"`
	Value        *string           `json:"value"`
	ContentType  *string           `json:"content_type"`
	ETag         string            `json:"etag"`
	LastModified string            `json:"last_modified"`
	Locked       bool              `json:"locked"`
	Tags         map[string]string `json:"tags"`
}

// Setting returns an App Configuration key-value's value and content type.
func (f *Fake) Setting(key, label string) (value, contentType string, ok bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := f.settings[settingID{key, label}]
	if s == nil {
		return "", "", false
	}
	if s.Value != nil {
		value = *s.Value
	}
	if s.ContentType != nil {
		contentType = *s.ContentType
	}
	return value, contentType, true
}

// Settings returns the keys with the given label, sorted.
func (f *Fake) Settings(label string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for id := range f.settings {
		if id.label == label {
			out = append(out, id.key)
		}
	}
	return sortedStrings(out)
}

func sortedStrings(s []string) []string {
	m := map[string]bool{}
	for _, x := range s {
		m[x] = true
	}
	return sortedKeys(m)
}

// serveAppConfig speaks the subset of the App Configuration data-plane
// REST API (api-version 2023-10-01) the provider uses: PUT, GET and
// DELETE /kv/{key}?label=, and GET /kv?key=<filter>&label=<label>. Every
// response carries a Sync-Token header (the SDK's sync-token policy
// panics without one) and requests must carry a bearer token.
func (f *Fake) serveAppConfig(w http.ResponseWriter, r *http.Request) {
	if !strings.HasPrefix(r.Header.Get("Authorization"), "Bearer ") {
		problem(w, http.StatusUnauthorized, "Unauthorized", "missing bearer token")
		return
	}
	if r.URL.Query().Get("api-version") == "" {
		problem(w, http.StatusBadRequest, "InvalidRequest", "api-version is required")
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls["AppConfig "+r.Method]++
	label := r.URL.Query().Get("label")
	path := r.URL.EscapedPath()
	switch {
	case path == "/kv" && r.Method == http.MethodGet:
		filter := r.URL.Query().Get("key")
		var items []setting
		for _, id := range f.sortedSettings() {
			if !matchKey(filter, id.key) || (r.URL.Query().Has("label") && id.label != label) {
				continue
			}
			items = append(items, *f.settings[id])
		}
		f.reply(w, http.StatusOK, "application/vnd.microsoft.appconfig.kvset+json; charset=utf-8", map[string]any{"items": nonNil(items)})
	case strings.HasPrefix(path, "/kv/"):
		key, err := url.PathUnescape(strings.TrimPrefix(path, "/kv/"))
		if err != nil || key == "" {
			problem(w, http.StatusBadRequest, "InvalidRequest", "bad key")
			return
		}
		id := settingID{key, label}
		switch r.Method {
		case http.MethodPut:
			var body struct {
				Value       *string           `json:"value"`
				ContentType *string           `json:"content_type"`
				Tags        map[string]string `json:"tags"`
			}
			if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
				problem(w, http.StatusBadRequest, "InvalidRequest", err.Error())
				return
			}
			// "a combined size limit of 10,000 characters on a key-value.
			// This limit includes all characters in the key, its value,
			// and all associated optional attributes" (App Configuration,
			// "Keys and values", learn.microsoft.com); the service answers
			// 413 Payload Too Large.
			n := utf8.RuneCountInString(key) + utf8.RuneCountInString(label)
			if body.Value != nil {
				n += utf8.RuneCountInString(*body.Value)
			}
			if body.ContentType != nil {
				n += utf8.RuneCountInString(*body.ContentType)
			}
			for k, v := range body.Tags {
				n += utf8.RuneCountInString(k) + utf8.RuneCountInString(v)
			}
			if n > MaxKeyValueChars {
				problem(w, http.StatusRequestEntityTooLarge, "PayloadTooLarge", fmt.Sprintf("the key-value takes %d characters, over the limit of %d", n, MaxKeyValueChars))
				return
			}
			f.syncSeq++
			s := &setting{Key: key, Value: body.Value, ContentType: body.ContentType, Tags: body.Tags,
				ETag: fmt.Sprintf("etag-%d", f.syncSeq), LastModified: time.Now().UTC().Format(time.RFC3339)}
			if label != "" {
				s.Label = &label
			}
			if s.Tags == nil {
				s.Tags = map[string]string{}
			}
			f.settings[id] = s
			f.reply(w, http.StatusOK, "application/vnd.microsoft.appconfig.kv+json; charset=utf-8", s)
		case http.MethodGet:
			s := f.settings[id]
			if s == nil {
				problem(w, http.StatusNotFound, "KeyValueNotFound", "no key-value "+key)
				return
			}
			f.reply(w, http.StatusOK, "application/vnd.microsoft.appconfig.kv+json; charset=utf-8", s)
		case http.MethodDelete:
			s := f.settings[id]
			if s == nil {
				w.Header().Set("Sync-Token", f.syncToken())
				w.WriteHeader(http.StatusNoContent)
				return
			}
			delete(f.settings, id)
			f.syncSeq++
			f.reply(w, http.StatusOK, "application/vnd.microsoft.appconfig.kv+json; charset=utf-8", s)
		default:
			problem(w, http.StatusMethodNotAllowed, "MethodNotAllowed", r.Method)
		}
	default:
		problem(w, http.StatusNotFound, "NotFound", path)
	}
}

func nonNil(s []setting) []setting {
	if s == nil {
		return []setting{}
	}
	return s
}

func (f *Fake) sortedSettings() []settingID {
	m := map[string]settingID{}
	for id := range f.settings {
		m[id.key+"\x00"+id.label] = id
	}
	var out []settingID
	for _, k := range sortedKeys(m) {
		out = append(out, m[k])
	}
	return out
}

// matchKey implements App Configuration key filters: exact, "prefix*",
// or "*" (any); a comma-separated list of those.
func matchKey(filter, key string) bool {
	if filter == "" {
		return true
	}
	for _, f := range strings.Split(filter, ",") {
		if p, ok := strings.CutSuffix(f, "*"); ok {
			if strings.HasPrefix(key, p) {
				return true
			}
		} else if f == key {
			return true
		}
	}
	return false
}

func (f *Fake) syncToken() string { return fmt.Sprintf("fakeSync=%d;sn=%d", f.syncSeq, f.syncSeq) }

func (f *Fake) reply(w http.ResponseWriter, status int, contentType string, v any) {
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("Sync-Token", f.syncToken())
	if s, ok := v.(*setting); ok {
		w.Header().Set("ETag", s.ETag)
	}
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func problem(w http.ResponseWriter, status int, typ, detail string) {
	w.Header().Set("Content-Type", "application/problem+json; charset=utf-8")
	w.Header().Set("Sync-Token", "fakeSync=0;sn=0")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"type": "https://azconfig.io/errors/" + typ, "title": typ, "detail": detail, "status": status})
}

// MaxKeyValueChars is App Configuration's limit on one key-value: key,
// value, label, content type and tags together.
const MaxKeyValueChars = 10000
