package provider

import (
	"errors"
	"net"
	"os"

	"github.com/alphaswarm/controller/workload"
)

// The error kit every provider builds its errors with, so that a backend
// failure reads the same from any provider: a code from the closed set,
// the provider's name, a message that says what was being done, and the
// backend's error kept as the cause (never serialised).

// Errorf returns a *workload.Error with code and a formatted message,
// naming the provider. A %w verb wraps its operand as the cause.
func Errorf(provider string, code workload.Code, format string, args ...any) *workload.Error {
	e := workload.Errorf(code, format, args...)
	e.Provider = provider
	return e
}

// NotFound is Errorf with code NotFound.
func NotFound(provider string, format string, args ...any) *workload.Error {
	return Errorf(provider, workload.NotFound, format, args...)
}

// Classifier maps a backend error to a code and, optionally, a message;
// "" keeps err.Error().
type Classifier func(err error) (workload.Code, string)

// Wrap turns a backend error into a *workload.Error naming the provider.
// nil stays nil. A *workload.Error anywhere in err's chain passes through
// with its code and message; if it names no provider it is returned as a
// copy naming provider. Any other error gets its code and message from
// classify, and what ("create replica 2 of web") leads the message as
// "what: message" (the message alone when what is empty); err is kept as
// the cause.
func Wrap(provider string, classify Classifier, err error, what string) error {
	if err == nil {
		return nil
	}
	var we *workload.Error
	if errors.As(err, &we) {
		if we.Provider == "" {
			return we.WithProvider(provider)
		}
		return err
	}
	code, msg := classify(err)
	if msg == "" {
		msg = err.Error()
	}
	if what != "" {
		msg = what + ": " + msg
	}
	e := Errorf(provider, code, "%s", msg)
	e.Err = err
	return e
}

// AfterChange reclassifies an error met after the operation's first
// successful backend change: a code that would promise nothing changed
// (see NothingChanged) becomes ProviderError, keeping the message and the
// cause; any other error, and nil, is returned as it is. done says what had
// already been changed ("a task-definition revision registered"); it may
// be empty.
func AfterChange(provider string, err error, done string) error {
	if !NothingChanged(err) {
		return err
	}
	we := workload.AsError(err)
	note := "the backend may have changed: check the service's status"
	if done != "" {
		note = "after " + done + ": check the service's status"
	}
	e := Errorf(provider, workload.ProviderError, "%s (%s)", we.Message, note)
	e.Err = err
	return e
}

// ErrUnsupported builds the Unsupported error for op on a provider.
func ErrUnsupported(provider string, op Operation, reason string) *workload.Error {
	e := Errorf(provider, workload.Unsupported, "%s: %s", op, reason)
	e.Err = errors.ErrUnsupported
	return e
}

// IsNetTimeout reports whether err is a network timeout: a net.Error that
// says so, or an I/O deadline passed.
func IsNetTimeout(err error) bool {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	return errors.Is(err, os.ErrDeadlineExceeded)
}
