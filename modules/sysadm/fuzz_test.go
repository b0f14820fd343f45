package sysadm

import (
	"encoding/json"
	"testing"
)

var envelopeSeeds = []string{
	`{"namespace":"rpc","name":"auth","id":"sampleID","args":{"username":"u","password":"p"}}`,
	`{"namespace":"rpc","name":"auth_ssl","id":"x","args":""}`,
	`{"namespace":"events","name":"subscribe","id":"e","args":["access.*","door.>"]}`,
	`{"namespace":"rpc","name":"auth","id":"n","username":"u","password":"p"}`,
	`{"namespace":"rpc","name":"identify","id":7}`,
	`{"namespace":"rpc","name":"identify","id":"a","id":"b"}`,
	`{"namespace":"\u0072pc","name":"x\ud800","id":"\"q\""}`,
	`{"namespace":{},"name":[],"args":null}`,
	`["rpc"]`, `null`, `"x"`, `{`, ``, "\xff\xfe", `{"namespace":"rpc","name":"`,
}

// FuzzSysadmEnvelope: DecodeRequest never panics; what it accepts has a non-empty namespace
// and name within their limits and JSON args; every reply built from its result (accepted or
// not) is one JSON object echoing namespace and id.
func FuzzSysadmEnvelope(f *testing.F) {
	for _, s := range envelopeSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		req, err := DecodeRequest(b)
		var out []byte
		if err != nil {
			if err.Msg == "" {
				t.Fatal("error without a message")
			}
			out = errorFrame(req, 400, "Bad Request: "+err.Msg)
		} else {
			if req.Namespace == "" || req.Name == "" || len(req.Namespace) > maxNamespaceLen ||
				len(req.Name) > maxNameLen || len(req.ID) > maxIDLen || !json.Valid(req.Args) {
				t.Fatalf("accepted %q as %+v", b, req)
			}
			out = replyFrame(req, req.Args)
		}
		var back struct {
			Namespace *string         `json:"namespace"`
			Name      *string         `json:"name"`
			ID        *string         `json:"id"`
			Args      json.RawMessage `json:"args"`
		}
		if e := json.Unmarshal(out, &back); e != nil || back.Namespace == nil || back.Name == nil || back.ID == nil {
			t.Fatalf("reply %q: %v", out, e)
		}
		if *back.Namespace != req.Namespace || *back.ID != req.ID {
			t.Fatalf("reply %q does not echo %+v", out, req)
		}
	})
}

// FuzzSysadmRESTBody: DecodeRESTBody never panics and what it accepts is JSON.
func FuzzSysadmRESTBody(f *testing.F) {
	for _, s := range append(envelopeSeeds, `{"args":{"door_id":1}}`, `{"junk":"junk"}`, `  `, `{"args":}`) {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		args, err := DecodeRESTBody(b)
		if err != nil {
			if args != nil || err.Msg == "" {
				t.Fatalf("error %v with args %q", err, args)
			}
			return
		}
		if !json.Valid(args) {
			t.Fatalf("accepted %q with args %q", b, args)
		}
	})
}

func TestDecodeRequest(t *testing.T) {
	for _, tc := range []struct {
		in       string
		ok       bool
		ns, id   string
		wantArgs string
	}{
		{`{"namespace":"rpc","name":"auth","id":"1","args":{"a":1}}`, true, "rpc", "1", `{"a":1}`},
		{`{"namespace":"rpc","name":"auth","args":"x"}`, true, "rpc", "", `"x"`},
		{`{"namespace":"rpc","name":"auth","id":"2","username":"u"}`, true, "rpc", "2", `{"namespace":"rpc","name":"auth","id":"2","username":"u"}`},
		{` {"namespace":"rpc","name":"auth","args":null} `, true, "rpc", "", `null`},
		{`{"namespace":"rpc","id":"3"}`, false, "rpc", "3", ""},
		{`{"namespace":5,"name":"x","id":"4"}`, false, "", "4", ""},
		{`{"namespace":"rpc","name":"x","id":4}`, false, "rpc", "", ""},
		{`{"namespace":"","name":"x"}`, false, "", "", ""},
	} {
		req, err := DecodeRequest([]byte(tc.in))
		if (err == nil) != tc.ok || req.Namespace != tc.ns || req.ID != tc.id || tc.ok && string(req.Args) != tc.wantArgs {
			t.Errorf("%s: %+v %v", tc.in, req, err)
		}
	}
}
