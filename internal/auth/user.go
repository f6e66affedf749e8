package auth

import (
	"unicode"
	"unicode/utf8"

	"github.com/alphaswarm/controller/workload"
)

// MaxUserLen is the longest user name accepted, in bytes.
const MaxUserLen = 128

// ValidateUser checks a user name: non-empty, at most MaxUserLen bytes,
// valid UTF-8, printable, no white space. It returns an InvalidArgument
// error on field "user".
func ValidateUser(user string) error {
	if m := userProblem(user); m != "" {
		return workload.Invalid(workload.FieldError{Path: "user", Message: m})
	}
	return nil
}

func userProblem(user string) string {
	switch {
	case user == "":
		return "is required"
	case len(user) > MaxUserLen:
		return "must be at most 128 bytes"
	case !utf8.ValidString(user):
		return "must be valid UTF-8"
	}
	for _, c := range user {
		if unicode.IsSpace(c) {
			return "must not contain white space"
		}
		if !unicode.IsPrint(c) {
			return "must contain only printable characters"
		}
	}
	return ""
}
