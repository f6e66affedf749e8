// Package specfile reads DeploymentSpecs from YAML or JSON documents (the
// files given to `alphaswarm deploy -f` and the bodies of deploy requests).
// YAML is converted to JSON and decoded by workload.DecodeSpecJSON, so both
// formats reject the same unknown fields with the same paths. It does no
// validation beyond decoding: callers call Validate.
package specfile

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/alphaswarm/controller/workload"
	"sigs.k8s.io/yaml"
)

// Format is an encoding of a spec.
type Format int

// The formats. Auto treats a document whose first non-space byte is '{' as
// JSON and anything else as YAML.
const (
	Auto Format = iota
	JSON
	YAML
)

// FormatOf picks a format from a media type or file name.
func FormatOf(mediaTypeOrName string) Format {
	s := strings.ToLower(mediaTypeOrName)
	switch {
	case strings.Contains(s, "json"):
		return JSON
	case strings.Contains(s, "yaml"), strings.HasSuffix(s, ".yml"):
		return YAML
	}
	return Auto
}

// Decode decodes one spec. Every failure is an InvalidArgument
// *workload.Error with field paths.
func Decode(b []byte, f Format) (workload.DeploymentSpec, error) {
	if len(b) > workload.MaxSpecBytes {
		return workload.DeploymentSpec{Replicas: 1}, workload.Invalid(workload.FieldError{Path: "spec",
			Message: fmt.Sprintf("must be at most %d bytes", workload.MaxSpecBytes)})
	}
	if f == Auto {
		if t := bytes.TrimSpace(b); len(t) > 0 && t[0] == '{' {
			f = JSON
		} else {
			f = YAML
		}
	}
	if f == YAML {
		j, err := yaml.YAMLToJSONStrict(b)
		if err != nil {
			return workload.DeploymentSpec{Replicas: 1}, workload.Invalid(workload.FieldError{Path: "spec", Message: "not valid YAML: " + err.Error()})
		}
		b = j
	}
	return workload.DecodeSpecJSON(b)
}

// Read decodes a spec from r, reading at most MaxSpecBytes+1 bytes.
func Read(r io.Reader, f Format) (workload.DeploymentSpec, error) {
	b, err := io.ReadAll(io.LimitReader(r, workload.MaxSpecBytes+1))
	if err != nil {
		return workload.DeploymentSpec{Replicas: 1}, err
	}
	return Decode(b, f)
}

// ReadFile decodes the spec in a file, choosing the format by its name.
func ReadFile(path string) (workload.DeploymentSpec, error) {
	fh, err := os.Open(path)
	if err != nil {
		return workload.DeploymentSpec{Replicas: 1}, err
	}
	defer fh.Close()
	return Read(fh, FormatOf(path))
}
