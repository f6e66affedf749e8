package auth

import (
	"testing"

	"github.com/alphaswarm/controller/workload"
)

func TestRoleAllows(t *testing.T) {
	tests := []struct {
		have, need Role
		want       bool
	}{
		{RoleViewer, RoleViewer, true},
		{RoleViewer, RoleOperator, false},
		{RoleViewer, RoleAdmin, false},
		{RoleOperator, RoleViewer, true},
		{RoleOperator, RoleOperator, true},
		{RoleOperator, RoleAdmin, false},
		{RoleAdmin, RoleViewer, true},
		{RoleAdmin, RoleOperator, true},
		{RoleAdmin, RoleAdmin, true},
		{"", RoleViewer, false},
		{"root", RoleViewer, false},
		{RoleAdmin, "", false},
		{RoleAdmin, "root", false},
		{"Admin", RoleViewer, false}, // Role values are canonical; ParseRole folds case
	}
	for _, tt := range tests {
		if got := tt.have.Allows(tt.need); got != tt.want {
			t.Errorf("%q.Allows(%q) = %v; want %v", tt.have, tt.need, got, tt.want)
		}
	}
}

func TestParseRole(t *testing.T) {
	tests := []struct {
		in   string
		want Role
		code workload.Code
	}{
		{"viewer", RoleViewer, ""},
		{"operator", RoleOperator, ""},
		{"admin", RoleAdmin, ""},
		{" Admin ", RoleAdmin, ""},
		{"OPERATOR", RoleOperator, ""},
		{"", "", workload.InvalidArgument},
		{"root", "", workload.InvalidArgument},
		{"view", "", workload.InvalidArgument},
	}
	for _, tt := range tests {
		got, err := ParseRole(tt.in)
		wantCode(t, err, tt.code)
		if got != tt.want {
			t.Errorf("ParseRole(%q) = %q; want %q", tt.in, got, tt.want)
		}
		if err != nil && workload.AsError(err).Fields[0].Path != "role" {
			t.Errorf("ParseRole(%q): field %q; want role", tt.in, workload.AsError(err).Fields[0].Path)
		}
	}
}

func TestHighest(t *testing.T) {
	tests := []struct {
		in   []string
		want Role
	}{
		{nil, ""},
		{[]string{"x", "y"}, ""},
		{[]string{"viewer"}, RoleViewer},
		{[]string{"viewer", "admin", "operator"}, RoleAdmin},
		{[]string{"operator", "superuser"}, RoleOperator},
	}
	for _, tt := range tests {
		got, ok := highest(tt.in)
		if got != tt.want || ok != (tt.want != "") {
			t.Errorf("highest(%q) = %q, %v; want %q", tt.in, got, ok, tt.want)
		}
	}
}
