package gcp

import (
	"slices"

	"google.golang.org/genproto/googleapis/api/annotations"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// clearOutputOnly clears, in m and every message it holds, the fields the
// API definition marks OUTPUT_ONLY (google.api.field_behavior, read from
// the compiled descriptors of cloud.google.com/go). A resource read with
// Get and sent back in an update carries them (uid, generation,
// conditions, ...); the service ignores them ("including the field in a
// request does nothing", google/api/field_behavior.proto), so sending them
// only hides what the request really asks for.
func clearOutputOnly(m protoreflect.Message) {
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		fb, _ := proto.GetExtension(fd.Options(), annotations.E_FieldBehavior).([]annotations.FieldBehavior)
		if slices.Contains(fb, annotations.FieldBehavior_OUTPUT_ONLY) {
			m.Clear(fd)
			return true
		}
		switch {
		case fd.Message() == nil:
		case fd.IsList():
			for i := 0; i < v.List().Len(); i++ {
				clearOutputOnly(v.List().Get(i).Message())
			}
		case fd.IsMap():
			if fd.MapValue().Message() != nil {
				v.Map().Range(func(_ protoreflect.MapKey, mv protoreflect.Value) bool {
					clearOutputOnly(mv.Message())
					return true
				})
			}
		default:
			clearOutputOnly(v.Message())
		}
		return true
	})
}
