package workload

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
)

// Envelope is the body of every API response:
//
//	{"status":"ok","data":...,"error":null}
//	{"status":"error","data":null,"error":{"code":...,"message":...,"provider":...,"retryable":...}}
type Envelope struct {
	Status string `json:"status"`
	Data   any    `json:"data"`
	Error  *Error `json:"error"`
}

// Envelope status values.
const (
	StatusOK    = "ok"
	StatusError = "error"
)

// OK wraps data in a successful envelope.
func OK(data any) Envelope { return Envelope{Status: StatusOK, Data: data} }

// Fail wraps err in an error envelope, classifying it with AsError.
func Fail(err error) Envelope {
	e := AsError(err)
	if e == nil {
		e = &Error{Code: Internal, Message: "unknown error"}
	}
	return Envelope{Status: StatusError, Error: e}
}

// WriteError answers an HTTP request with err's error envelope, served
// with its code's status (Code.HTTPStatus); an Unauthenticated answer
// carries the Bearer challenge. The cause is never serialised. Headers set
// on w before the call are kept. It is the one error writer of the API
// and of the dashboard's own endpoints.
func WriteError(w http.ResponseWriter, err error) {
	env := Fail(err)
	b, _ := json.Marshal(env)
	w.Header().Set("Content-Type", "application/json")
	if env.Error.Code == Unauthenticated {
		w.Header().Set("WWW-Authenticate", `Bearer realm="alphaswarm"`)
	}
	w.WriteHeader(env.Error.Code.HTTPStatus())
	w.Write(append(b, '\n'))
}

// MarshalJSON writes the three keys always, in order, with null for the
// absent side, whatever the Go values hold.
func (v Envelope) MarshalJSON() ([]byte, error) {
	type wire struct {
		Status string `json:"status"`
		Data   any    `json:"data"`
		Error  *Error `json:"error"`
	}
	if v.Status == StatusError {
		if v.Error == nil {
			return nil, errors.New("workload: error envelope without an error")
		}
		return json.Marshal(wire{Status: StatusError, Error: v.Error})
	}
	if v.Status != StatusOK {
		return nil, fmt.Errorf("workload: envelope status %q", v.Status)
	}
	return json.Marshal(wire{Status: StatusOK, Data: v.Data})
}

// DecodeEnvelope parses an envelope, decoding its data into data (which may
// be nil to discard it). An error envelope is returned as its *Error.
func DecodeEnvelope(b []byte, data any) error {
	var w struct {
		Status string          `json:"status"`
		Data   json.RawMessage `json:"data"`
		Error  *Error          `json:"error"`
	}
	if err := json.Unmarshal(b, &w); err != nil {
		return fmt.Errorf("decode envelope: %w", err)
	}
	switch w.Status {
	case StatusOK:
		if data != nil && len(w.Data) > 0 {
			return json.Unmarshal(w.Data, data)
		}
		return nil
	case StatusError:
		if w.Error == nil {
			return &Error{Code: Internal, Message: "error envelope without an error"}
		}
		return w.Error
	}
	return fmt.Errorf("decode envelope: status %q", w.Status)
}
