package fakeaws

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"
	"github.com/aws/aws-sdk-go-v2/service/ecr"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/eks"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/encoding/cbor"
)

// The request contract is the SDK's own, not our reading of the API: every
// request (ECS, SSM, CloudWatch Logs, Secrets Manager and ECR in AWS JSON 1.1, CloudWatch in
// Smithy RPC v2 CBOR, EKS in REST-JSON) is decoded into the SDK's input
// type for its operation and run through that operation's client stack up
// to the transport, so the validators the SDK generates from each
// service's Smithy model (validateOp<Operation>: required members, nested
// shapes) judge it. A request they refuse is answered ValidationException
// and recorded (Violations), before any handler runs. The client the fake
// uses never sends anything: its transport fails every request
// (errValidated), which is how a request that passed is recognised.
// CBOR bodies are turned into the JSON form first (epoch-seconds tag 1 as
// a number, as AWS JSON sends timestamps); an EKS request's input is its
// path parameters. IAM and STS (query protocol) requests are not checked.

var errValidated = errors.New("fakeaws: the request passed the SDK's validation")

type refuseAll struct{}

func (refuseAll) Do(*http.Request) (*http.Response, error) { return nil, errValidated }

var (
	validatorsOnce sync.Once
	validators     map[string]reflect.Value
)

func sdkClients() map[string]reflect.Value {
	validatorsOnce.Do(func() {
		cfg := aws.Config{Region: "us-east-1", Credentials: aws.AnonymousCredentials{}, HTTPClient: refuseAll{},
			Retryer: func() aws.Retryer { return aws.NopRetryer{} }}
		validators = map[string]reflect.Value{
			"ecs":            reflect.ValueOf(ecs.NewFromConfig(cfg)),
			"ssm":            reflect.ValueOf(ssm.NewFromConfig(cfg)),
			"logs":           reflect.ValueOf(cloudwatchlogs.NewFromConfig(cfg)),
			"cloudwatch":     reflect.ValueOf(cloudwatch.NewFromConfig(cfg)),
			"eks":            reflect.ValueOf(eks.NewFromConfig(cfg)),
			"ecr":            reflect.ValueOf(ecr.NewFromConfig(cfg)),
			"secretsmanager": reflect.ValueOf(secretsmanager.NewFromConfig(cfg)),
		}
	})
	return validators
}

// sdkValidate runs the SDK's validation of service's operation op on body.
func (f *Fake) sdkValidate(service, op string, body []byte) *apiError {
	c, ok := sdkClients()[service]
	if !ok {
		return nil
	}
	m := c.MethodByName(op)
	if !m.IsValid() || m.Type().NumIn() < 2 {
		return nil // not an operation of the SDK: the handler answers
	}
	in := reflect.New(m.Type().In(1).Elem())
	if len(body) > 0 {
		if err := decodeInput(body, in); err != nil {
			f.violation(service + "." + op + ": cannot decode into " + in.Type().Elem().String() + ": " + err.Error())
			return errf(400, "SerializationException", "%v", err)
		}
	}
	out := m.Call([]reflect.Value{reflect.ValueOf(context.Background()), in})
	err, _ := out[len(out)-1].Interface().(error)
	var ipe smithy.InvalidParamsError
	if errors.As(err, &ipe) {
		f.violation(service + "." + op + ": " + ipe.Error())
		return errf(400, "ValidationException", "%s", ipe.Error())
	}
	if err != nil && !errors.Is(err, errValidated) {
		f.violation(service + "." + op + ": the SDK did not get to send it: " + err.Error())
	}
	return nil
}

func (f *Fake) violation(v string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.violations = append(f.violations, v)
}

// Violations lists the requests the SDK's validation refused.
func (f *Fake) Violations() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.violations)
}

// cborToJSON turns a decoded RPC v2 CBOR body into the JSON form
// decodeInput reads: maps, lists, strings, numbers and booleans as they
// are, blobs as base64 (encoding/json's []byte form), and timestamps (tag
// 1, epoch seconds) as numbers.
func cborToJSON(v cbor.Value) any {
	switch x := v.(type) {
	case cbor.Map:
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[k] = cborToJSON(e)
		}
		return m
	case cbor.List:
		l := make([]any, len(x))
		for i, e := range x {
			l[i] = cborToJSON(e)
		}
		return l
	case cbor.String:
		return string(x)
	case cbor.Slice:
		return []byte(x)
	case cbor.Uint:
		return float64(x)
	case cbor.NegInt:
		return -float64(x)
	case cbor.Float32:
		return float64(x)
	case cbor.Float64:
		return float64(x)
	case cbor.Bool:
		return bool(x)
	case *cbor.Tag:
		return cborToJSON(x.Value)
	case cbor.Tag:
		return cborToJSON(x.Value)
	}
	return nil
}

// sdkValidateCBOR is sdkValidate for a CloudWatch RPC v2 CBOR body.
func (f *Fake) sdkValidateCBOR(op string, body []byte) *apiError {
	v, err := cbor.Decode(body)
	if err != nil {
		f.violation("cloudwatch." + op + ": not CBOR: " + err.Error())
		return errf(400, "SerializationException", "%v", err)
	}
	b, err := json.Marshal(cborToJSON(v))
	if err != nil {
		f.violation("cloudwatch." + op + ": " + err.Error())
		return errf(400, "SerializationException", "%v", err)
	}
	return f.sdkValidate("cloudwatch", op, b)
}

var timeType = reflect.TypeOf(time.Time{})

// decodeInput decodes an AWS JSON 1.1 body into the input struct in points
// to. Member names match the Go fields but for case (encoding/json folds
// it); timestamps travel as epoch seconds and are converted for the
// time.Time fields first.
func decodeInput(body []byte, in reflect.Value) error {
	var raw any
	if err := json.Unmarshal(body, &raw); err != nil {
		return err
	}
	b, err := json.Marshal(fixTimes(raw, in.Type().Elem()))
	if err != nil {
		return err
	}
	return json.Unmarshal(b, in.Interface())
}

func fixTimes(v any, t reflect.Type) any {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch x := v.(type) {
	case float64:
		if t == timeType {
			sec := int64(x)
			return time.Unix(sec, int64((x-float64(sec))*1e9)).UTC().Format(time.RFC3339Nano)
		}
	case []any:
		if t.Kind() == reflect.Slice {
			for i := range x {
				x[i] = fixTimes(x[i], t.Elem())
			}
		}
	case map[string]any:
		switch t.Kind() {
		case reflect.Map:
			for k := range x {
				x[k] = fixTimes(x[k], t.Elem())
			}
		case reflect.Struct:
			for k := range x {
				if sf, ok := fieldFold(t, k); ok {
					x[k] = fixTimes(x[k], sf.Type)
				}
			}
		}
	}
	return v
}

func fieldFold(t reflect.Type, name string) (reflect.StructField, bool) {
	for i := 0; i < t.NumField(); i++ {
		if sf := t.Field(i); sf.IsExported() && equalFold(sf.Name, name) {
			return sf, true
		}
	}
	return reflect.StructField{}, false
}

func equalFold(a, b string) bool { return strings.EqualFold(a, b) }
