package httpapi

import (
	"encoding/json"
	"net/http"
	"strings"

	"github.com/alphaswarm/controller/workload"
)

// checkUpgrade answers whether r is a WebSocket opening handshake (RFC 6455
// section 4.2.1) that websocket.Accept would take, so that a request that
// is not one gets the error envelope rather than the library's plain-text
// answer: 426 Upgrade Required (RFC 9110 section 15.5.22) when it does not
// ask to upgrade to websocket at all, 400 when the handshake is malformed.
func checkUpgrade(r *http.Request) (int, error) {
	if !headerHasToken(r.Header, "Connection", "upgrade") || !headerHasToken(r.Header, "Upgrade", "websocket") {
		return http.StatusUpgradeRequired, workload.Errorf(workload.InvalidArgument,
			"this endpoint speaks WebSocket only: send Connection: Upgrade and Upgrade: websocket (see package api for the framing)")
	}
	if r.Method != http.MethodGet {
		return http.StatusMethodNotAllowed, workload.Errorf(workload.InvalidArgument, "a WebSocket handshake must be a GET")
	}
	if v := r.Header.Get("Sec-WebSocket-Version"); v != "13" {
		return http.StatusBadRequest, workload.Invalid(workload.FieldError{Path: "header.Sec-WebSocket-Version", Message: "must be 13"})
	}
	if r.Header.Get("Sec-WebSocket-Key") == "" {
		return http.StatusBadRequest, workload.Invalid(workload.FieldError{Path: "header.Sec-WebSocket-Key", Message: "is required"})
	}
	return 0, nil
}

// headerHasToken reports whether the comma-separated header name holds
// token, case-insensitively.
func headerHasToken(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for t := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

// writeErrorStatus writes err's envelope with an explicit HTTP status, for
// the answers whose status no workload code implies (426, 405).
func writeErrorStatus(w http.ResponseWriter, status int, err error) {
	b, _ := json.Marshal(workload.Fail(err))
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}
