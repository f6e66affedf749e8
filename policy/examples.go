package policy

import (
	"context"
	"fmt"
	"strings"

	"github.com/alphaswarm/controller/workload"
	"sigs.k8s.io/yaml"
)

// Example is one case of an examples file (alphaswarm policy test -f):
// an input and the decision the policies must reach.
type Example struct {
	Name  string `json:"name"`
	Input Input  `json:"input"`
	// Allow is the expected decision.
	Allow bool `json:"allow"`
	// Reasons, on a deny, are texts each of which some reason must
	// contain.
	Reasons []string `json:"reasons,omitempty"`
}

// Examples is an examples file.
type Examples struct {
	Examples []Example `json:"examples"`
}

// ExampleResult is how one example fared.
type ExampleResult struct {
	Name     string
	Decision Decision
	// Mismatch says how the decision differs from the expected one; ""
	// when it matched.
	Mismatch string
}

// DecodeExamples reads an examples file (YAML or JSON); unknown keys are
// errors naming their path, so a misspelt input field cannot pass silently.
func DecodeExamples(b []byte) (Examples, error) {
	j, err := yaml.YAMLToJSON(b)
	if err != nil {
		return Examples{}, workload.Errorf(workload.InvalidArgument, "examples: %v", err)
	}
	ex, err := workload.DecodeDocument[Examples](j, "examples")
	if err != nil {
		return Examples{}, err
	}
	for i, x := range ex.Examples {
		if x.Name == "" {
			return Examples{}, workload.Invalid(workload.FieldError{Path: fmt.Sprintf("examples[%d].name", i), Message: "is required"})
		}
		if x.Input.Time.IsZero() {
			return Examples{}, workload.Invalid(workload.FieldError{Path: fmt.Sprintf("examples[%d].input.time", i), Message: "is required"})
		}
	}
	return ex, nil
}

// Test evaluates every example with ev.
func Test(ctx context.Context, ev Evaluator, ex Examples) ([]ExampleResult, error) {
	out := make([]ExampleResult, 0, len(ex.Examples))
	for _, x := range ex.Examples {
		d, err := ev.Evaluate(ctx, x.Input)
		if err != nil {
			return out, fmt.Errorf("example %q: %w", x.Name, err)
		}
		r := ExampleResult{Name: x.Name, Decision: d}
		switch {
		case d.Allow != x.Allow:
			r.Mismatch = fmt.Sprintf("expected %s, got %s", verdict(x.Allow), verdict(d.Allow))
			if !d.Allow {
				r.Mismatch += ": " + strings.Join(d.Reasons, "; ")
			}
		default:
			for _, want := range x.Reasons {
				if !containsAny(d.Reasons, want) {
					r.Mismatch = fmt.Sprintf("no reason contains %q (reasons: %s)", want, strings.Join(d.Reasons, "; "))
					break
				}
			}
		}
		out = append(out, r)
	}
	return out, nil
}

func verdict(allow bool) string {
	if allow {
		return "allow"
	}
	return "deny"
}

func containsAny(reasons []string, want string) bool {
	for _, r := range reasons {
		if strings.Contains(r, want) {
			return true
		}
	}
	return false
}
