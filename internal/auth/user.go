package auth

import (
	"strings"
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

// ValidateLocalUser checks the user name of a local token: ValidateUser,
// and neither ':' nor '@', so that no local name can look like an OIDC
// principal ("oidc:<issuer>#<subject>") or an email display name.
func ValidateLocalUser(user string) error {
	if m := localUserProblem(user); m != "" {
		return workload.Invalid(workload.FieldError{Path: "user", Message: m})
	}
	return nil
}

func localUserProblem(user string) string {
	if m := userProblem(user); m != "" {
		return m
	}
	if strings.ContainsAny(user, ":@") {
		return "must not contain ':' or '@' (those forms name OIDC identities)"
	}
	return ""
}

// displayProblem checks a display name (an OIDC name claim): non-empty,
// at most MaxUserLen bytes, valid UTF-8, printable (spaces allowed).
func displayProblem(name string) string {
	switch {
	case name == "":
		return "is empty"
	case len(name) > MaxUserLen:
		return "is too long"
	case !utf8.ValidString(name):
		return "is not valid UTF-8"
	}
	for _, c := range name {
		if !unicode.IsPrint(c) {
			return "holds a character that is not printable"
		}
	}
	return ""
}
