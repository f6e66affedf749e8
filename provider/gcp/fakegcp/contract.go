package fakegcp

import (
	"context"
	"fmt"
	"slices"

	"cloud.google.com/go/logging/apiv2/loggingpb"
	"google.golang.org/genproto/googleapis/api/annotations"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// The request contract is read from the API definitions themselves, not
// from our reading of them: every message of cloud.google.com/go carries
// its fields' google.api.field_behavior (google/api/field_behavior.proto)
// in its compiled descriptor, and the fake checks each request against it
// before any handler runs (contractInterceptor; TailLogEntries checks its
// first message):
//
//   - REQUIRED: "the field must be provided as part of the request, and
//     failure to do so will cause an error (usually INVALID_ARGUMENT)". A
//     required string, bytes, message, list or map that is empty in a
//     message the request carries is INVALID_ARGUMENT. (Scalars and enums
//     are not checked: their zero value is indistinguishable from unset
//     in proto3 and is often meaningful, e.g. ListTimeSeriesRequest.view
//     FULL.)
//   - OUTPUT_ONLY: "including the field in a request does nothing (the
//     server must ignore it and must not throw an error as a result of the
//     field's presence)". The fake is stricter than the service on
//     purpose and refuses such a field with INVALID_ARGUMENT: a provider
//     that sends one depends on a value the real service throws away.
//   - IMMUTABLE: "may be set once in a request to create a resource, but
//     may not be changed thereafter": an update that changes one is
//     INVALID_ARGUMENT (checkImmutable, used by UpdateService).
//
// StrictOutputOnly (default true) turns the OUTPUT_ONLY refusal off for
// tests that replay what a real client might send.

// contractInterceptor applies checkFieldBehavior to every unary request.
func (f *Server) contractInterceptor(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if m, ok := req.(proto.Message); ok {
		if err := f.checkRequest(info.FullMethod, m); err != nil {
			return nil, err
		}
	}
	return handler(ctx, req)
}

// checkRequest checks m against its field behaviours and records a
// violation for Violations.
func (f *Server) checkRequest(method string, m proto.Message) error {
	if w, ok := m.(*loggingpb.WriteLogEntriesRequest); ok {
		// WriteLogEntriesRequest.log_name and resource are "a default
		// ... for all log entries in entries that do not specify a
		// value": the entries' required fields may come from the request.
		w = proto.Clone(w).(*loggingpb.WriteLogEntriesRequest)
		for _, e := range w.Entries {
			if e.LogName == "" {
				e.LogName = w.LogName
			}
			if e.Resource == nil {
				e.Resource = w.Resource
			}
		}
		m = w
	}
	f.mu.Lock()
	strict := !f.LenientOutputOnly
	f.mu.Unlock()
	err := checkFieldBehavior(m.ProtoReflect(), "", strict)
	if err != nil {
		f.mu.Lock()
		f.violations = append(f.violations, method+": "+err.Error())
		f.mu.Unlock()
		return status.Error(codes.InvalidArgument, err.Error())
	}
	return nil
}

// Violations lists the requests the contract check refused ("method: why").
func (f *Server) Violations() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.violations)
}

func behaviors(fd protoreflect.FieldDescriptor) []annotations.FieldBehavior {
	fb, _ := proto.GetExtension(fd.Options(), annotations.E_FieldBehavior).([]annotations.FieldBehavior)
	return fb
}

func join(path string, name protoreflect.Name) string {
	if path == "" {
		return string(name)
	}
	return path + "." + string(name)
}

// checkFieldBehavior walks the message a request carries.
func checkFieldBehavior(m protoreflect.Message, path string, strictOutputOnly bool) error {
	fields := m.Descriptor().Fields()
	for i := 0; i < fields.Len(); i++ {
		fd := fields.Get(i)
		fb := behaviors(fd)
		p := join(path, fd.Name())
		has := m.Has(fd)
		if has && strictOutputOnly && slices.Contains(fb, annotations.FieldBehavior_OUTPUT_ONLY) {
			return fmt.Errorf("%s is output only (google.api.field_behavior) and must not be sent", p)
		}
		if !has && slices.Contains(fb, annotations.FieldBehavior_REQUIRED) {
			switch {
			case fd.IsList(), fd.IsMap(), fd.Kind() == protoreflect.MessageKind, fd.Kind() == protoreflect.StringKind, fd.Kind() == protoreflect.BytesKind:
				return fmt.Errorf("%s is required (google.api.field_behavior)", p)
			}
		}
		if !has || fd.Message() == nil {
			continue
		}
		switch {
		case fd.IsList():
			l := m.Get(fd).List()
			for j := 0; j < l.Len(); j++ {
				if err := checkFieldBehavior(l.Get(j).Message(), fmt.Sprintf("%s[%d]", p, j), strictOutputOnly); err != nil {
					return err
				}
			}
		case fd.IsMap():
			if fd.MapValue().Message() == nil {
				continue
			}
			var err error
			m.Get(fd).Map().Range(func(k protoreflect.MapKey, v protoreflect.Value) bool {
				err = checkFieldBehavior(v.Message(), fmt.Sprintf("%s[%v]", p, k.Interface()), strictOutputOnly)
				return err == nil
			})
			if err != nil {
				return err
			}
		default:
			if err := checkFieldBehavior(m.Get(fd).Message(), p, strictOutputOnly); err != nil {
				return err
			}
		}
	}
	return nil
}

// checkImmutable refuses an update whose resource changes a field marked
// IMMUTABLE relative to the stored resource (nested messages included).
func checkImmutable(update, stored protoreflect.Message, path string) error {
	fields := update.Descriptor().Fields()
	for i := 0; i < fields.Len(); i++ {
		fd := fields.Get(i)
		p := join(path, fd.Name())
		if slices.Contains(behaviors(fd), annotations.FieldBehavior_IMMUTABLE) {
			if update.Has(fd) && !update.Get(fd).Equal(stored.Get(fd)) {
				return fmt.Errorf("%s is immutable (google.api.field_behavior) and cannot be changed", p)
			}
			continue
		}
		if fd.Message() != nil && !fd.IsList() && !fd.IsMap() && update.Has(fd) && stored.Has(fd) {
			if err := checkImmutable(update.Get(fd).Message(), stored.Get(fd).Message(), p); err != nil {
				return err
			}
		}
	}
	return nil
}
