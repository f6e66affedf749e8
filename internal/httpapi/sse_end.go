package httpapi

import "net/http"

// Ending a stream so that standard SSE clients stop.
//
// An EventSource-style client reconnects whenever the connection closes,
// sending the last event id it saw as Last-Event-ID; it stops only when a
// reconnect is answered 204 No Content (WHATWG HTML, "Server-sent events",
// section 9.2.3: "HTTP 204 No Content ... must fail the connection", i.e.
// not reconnect). So the event that ends a finished stream (a non-follow
// logs tail, a metrics stream whose service went away) carries the id
// endEventID, and a request carrying Last-Event-ID: endEventID gets 204.
// A stream ended because the server is shutting down keeps a numeric id:
// its clients should reconnect (to this server restarted, or another).
//
// Resuming from a numeric Last-Event-ID is not offered: the ids count
// events within one connection, and the backends' log and metric streams
// have no position to resume from; a reconnect starts the stream afresh.

// endEventID is the id of the event that ends a finished stream.
const endEventID = "end"

// end writes the event that ends a finished stream.
func (e *sse) end(name string, v any) error { return e.write(endEventID, name, v) }

// streamFinished answers 204 to a client reconnecting after the end event
// and reports whether it did.
func streamFinished(w http.ResponseWriter, r *http.Request) bool {
	if r.Header.Get("Last-Event-ID") != endEventID {
		return false
	}
	w.WriteHeader(http.StatusNoContent)
	return true
}
