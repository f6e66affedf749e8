package ssmsession

// Sending, acknowledgements, resends and keep-alive of the data channel:
// every message the client sends waits in the send window until the agent
// acknowledges it, and is resent after a backoff until then.

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/coder/websocket"
)

type outgoing struct {
	seq         int64
	raw         []byte
	size        int // counted in inFlightBytes
	first, last time.Time
	resent      int
}

// send sends one sequenced input_stream_data message and keeps it until
// it is acknowledged. It first waits, while ctx lasts, for room in the
// window of messages in flight (a message is always let through when none
// is in flight).
func (s *session) send(ctx context.Context, pt PayloadType, payload []byte) error {
	for {
		room, err := s.trySend(ctx, pt, payload, true)
		if room == nil {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-room:
		}
	}
}

// sendNow is send without waiting for room in the window: for the read
// loop (the handshake response), which must not wait for the
// acknowledgements it is the one to receive.
func (s *session) sendNow(ctx context.Context, pt PayloadType, payload []byte) error {
	_, err := s.trySend(ctx, pt, payload, false)
	return err
}

// trySend sends the message, unless window is set and the window is
// full: it then returns the channel closed when an acknowledgement frees
// room.
func (s *session) trySend(ctx context.Context, pt PayloadType, payload []byte, window bool) (chan struct{}, error) {
	s.sendMu.Lock()
	defer s.sendMu.Unlock()
	s.mu.Lock()
	if n := len(s.unacked); window && n > 0 &&
		(n >= maxInFlight || s.inFlightBytes+offPayload+len(payload) > maxInFlightBytes) {
		room := s.room
		s.mu.Unlock()
		return room, nil
	}
	m := Message{Type: TypeInputStreamData, SchemaVersion: 1, CreatedDate: nowMillis(),
		SequenceNumber: s.nextSeq, MessageID: NewUUID(), PayloadType: pt, Payload: payload}
	raw, err := m.Marshal()
	if err != nil {
		s.mu.Unlock()
		return nil, err
	}
	now := time.Now()
	s.unacked = append(s.unacked, &outgoing{seq: s.nextSeq, raw: raw, size: len(raw), first: now, last: now})
	s.inFlightBytes += len(raw)
	s.nextSeq++
	s.mu.Unlock()
	if err := s.conn.Write(ctx, websocket.MessageBinary, raw); err != nil {
		return nil, channelErr("send", err)
	}
	return nil, nil
}

// ack acknowledges a received stream message.
func (s *session) ack(ctx context.Context, m *Message) error {
	content, _ := json.Marshal(AcknowledgeContent{MessageType: m.Type, MessageID: m.MessageID.String(),
		SequenceNumber: m.SequenceNumber, IsSequentialMessage: true})
	a := Message{Type: TypeAcknowledge, SchemaVersion: 1, CreatedDate: nowMillis(), SequenceNumber: 0,
		Flags: FlagSYN | FlagFIN, MessageID: NewUUID(), Payload: content}
	raw, err := a.Marshal()
	if err != nil {
		return err
	}
	if err := s.conn.Write(ctx, websocket.MessageBinary, raw); err != nil {
		return channelErr("acknowledge", err)
	}
	return nil
}

// acknowledged drops an acknowledged input message and, if it was sent
// once only (Karn), updates the retransmission timeout the plugin's way.
func (s *session) acknowledged(seq int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	i := slices.IndexFunc(s.unacked, func(o *outgoing) bool { return o.seq == seq })
	if i < 0 {
		return
	}
	o := s.unacked[i]
	s.unacked = slices.Delete(s.unacked, i, i+1)
	s.inFlightBytes -= o.size
	close(s.room) // wake a sender waiting for room
	s.room = make(chan struct{})
	if o.resent > 0 {
		return
	}
	r := float64(time.Since(o.first))
	s.rttvar = 0.75*s.rttvar + 0.25*math.Abs(s.srtt-r)
	s.srtt = 0.875*s.srtt + 0.125*r
	s.rto = min(time.Duration(s.srtt+math.Max(float64(clockGranularity), 4*s.rttvar)), maxRTO)
}

// resendLoop resends the oldest unacknowledged input message (only that
// one, as the plugin does: the agent holds later ones that arrive early)
// when it has been unacknowledged for the retransmission timeout, doubled
// for each time it was already resent, and fails the session when it
// stays unacknowledged for GiveUp.
func (s *session) resendLoop(ctx context.Context) error {
	t := time.NewTicker(s.opts.ResendTick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		now := time.Now()
		var due []byte
		s.mu.Lock()
		if len(s.unacked) > 0 {
			o := s.unacked[0]
			if now.Sub(o.first) > s.opts.GiveUp {
				s.mu.Unlock()
				return fmt.Errorf("ssmsession: input message %d not acknowledged after %s (%d resends)", o.seq, s.opts.GiveUp, o.resent)
			}
			if now.Sub(o.last) >= resendAfter(s.rto, o.resent) {
				o.last = now
				o.resent++
				s.res.Resent++
				due = o.raw
			}
		}
		s.mu.Unlock()
		if due == nil {
			continue
		}
		if err := s.conn.Write(ctx, websocket.MessageBinary, due); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return channelErr("resend", err)
		}
	}
}

// resendAfter is how long a message already resent n times waits for an
// acknowledgement before it is sent again: rto, doubled per resend, at
// most maxResendInterval (or rto if that is more).
func resendAfter(rto time.Duration, n int) time.Duration {
	d := rto
	for range n {
		if d >= maxResendInterval {
			break
		}
		d *= 2
	}
	return max(rto, min(d, maxResendInterval))
}

// pinger is what keepAlive needs of the WebSocket.
type pinger interface {
	Ping(context.Context) error
}

// keepAlive pings the service every interval, as the plugin does, so
// that an idle session is not dropped by intermediaries, and fails the
// session when a pong does not come within timeout: the WebSocket library
// does not close the connection then, and a half-open connection would
// otherwise go unnoticed until ctx ends.
func keepAlive(ctx context.Context, conn pinger, interval, timeout time.Duration) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		pctx, cancel := context.WithTimeout(ctx, timeout)
		err := conn.Ping(pctx)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return channelErr(fmt.Sprintf("ping (no answer within %s)", timeout), err)
		}
	}
}
