package checkpoint

import (
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/alphaswarm/controller/ledger"
)

// appendRowLine appends the JSON of Line{Type: "row", Row: r}: the same
// document encoding/json makes (TestRowLineMatchesEncodingJSON keeps it
// so, field by field), at a fraction of the cost, since every row of a
// busy ledger goes through it for every sink.
func appendRowLine(b []byte, r *ledger.Record) []byte {
	b = append(b, `{"type":"row","row":{"seq":`...)
	b = strconv.AppendInt(b, r.Seq, 10)
	b = appendField(b, "runId", r.RunID, false)
	b = appendField(b, "kind", string(r.Kind), false)
	b = appendField(b, "userId", r.UserID, false)
	b = appendField(b, "auth", r.Auth, true)
	b = appendField(b, "userName", r.UserName, true)
	b = appendField(b, "action", r.Action, false)
	b = appendField(b, "target", r.Target, false)
	b = appendField(b, "service", r.Service, false)
	b = appendField(b, "provider", r.Provider, false)
	b = appendField(b, "requestDigest", r.RequestDigest, false)
	b = appendField(b, "idempotencyKey", r.IdempotencyKey, true)
	b = appendField(b, "outcome", string(r.Outcome), true)
	b = appendField(b, "errorCode", r.ErrorCode, true)
	b = appendField(b, "message", r.Message, true)
	b = appendField(b, "detail", r.Detail, true)
	b = appendField(b, "policyDigest", r.PolicyDigest, true)
	b = append(b, `,"durationNs":`...)
	b = strconv.AppendInt(b, int64(r.Duration), 10)
	b = append(b, `,"time":"`...)
	b = r.Time.AppendFormat(b, time.RFC3339Nano)
	b = append(b, '"')
	b = appendField(b, "prevHash", r.PrevHash, false)
	b = appendField(b, "hash", r.Hash, false)
	b = append(b, `,"version":`...)
	b = strconv.AppendInt(b, int64(r.Version), 10)
	return append(b, "}}"...)
}

func appendField(b []byte, name, v string, omitEmpty bool) []byte {
	if omitEmpty && v == "" {
		return b
	}
	b = append(b, ',', '"')
	b = append(b, name...)
	b = append(b, '"', ':')
	return appendString(b, v)
}

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string, escaping as encoding/json does
// (including <, > and &, U+2028 and U+2029; invalid UTF-8 becomes U+FFFD).
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
