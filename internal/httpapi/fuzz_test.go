package httpapi

import (
	"testing"

	"github.com/alphaswarm/controller/api"

	"github.com/alphaswarm/controller/workload"
)

func fuzzDecoder[T any](f *testing.F, seeds ...string) {
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		_, err := decodeStrict[T](b)
		if err != nil {
			if e := workload.AsError(err); e.Code != workload.InvalidArgument || len(e.Fields) == 0 {
				t.Fatalf("error %v: want invalid_argument with fields", err)
			}
		}
	})
}

func FuzzDecodeScale(f *testing.F) {
	fuzzDecoder[api.ScaleRequest](f, `{"replicas":3}`, `{"replicas":"3"}`, `{"replicas":3,"x":1}`, `[]`)
}

func FuzzDecodeConfig(f *testing.F) {
	fuzzDecoder[api.ConfigRequest](f, `{"config":{"a":"b"}}`, `{"config":{"a":1}}`, `{"config":null}`)
}

func FuzzDecodeExec(f *testing.F) {
	fuzzDecoder[api.ExecRequest](f, `{"command":["sh","-c","ls"],"stdin":"x"}`, `{"command":"sh"}`)
}

func FuzzDecodeHalt(f *testing.F) {
	fuzzDecoder[api.HaltRequest](f, `{"on":true}`, `{"on":"yes","target":"x"}`)
}

func FuzzDecodeToken(f *testing.F) {
	fuzzDecoder[api.TokenRequest](f, `{"user":"a","role":"viewer","ttl":"1h"}`, `{"user":"a","role":"viewer","Role":"admin"}`, `{"ttl":-1}`)
}

func FuzzDecodeExecControl(f *testing.F) {
	fuzzDecoder[api.ExecControl](f, `{"resize":{"cols":80,"rows":24}}`, `{"eof":true,"eof":false}`, `{"Resize":{}}`)
}
