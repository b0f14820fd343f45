package core

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestStrictUnmarshal(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		wantErr string // substring; "" means success
	}{
		{"ok", `{"listen":"127.0.0.1:9"}`, ""},
		{"trailing whitespace ok", "{\"listen\":\"x\"}\n\t ", ""},
		{"unknown field", `{"listen":"x","lisen":"y"}`, `unknown field "lisen"`},
		{"unknown nested field", `{"modules":[{"module":"a","cfg":{}}]}`, `unknown field "cfg"`},
		{"trailing object", `{"listen":"x"}{"listen":"y"}`, "trailing data"},
		{"trailing garbage", `{"listen":"x"} x`, "trailing data"},
		{"trailing brace", `{"listen":"x"}}`, "trailing data"},
		{"syntax error offset", `{"listen": "x",, }`, "at byte 16"},
		{"syntax error offset later", `{"listen": "x", "data": tru}`, "at byte 28"},
		{"wrong type", `{"listen": 5}`, "cannot unmarshal number"},
		{"empty", ``, "EOF"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var c Config
			err := StrictUnmarshal([]byte(tc.in), &c)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("StrictUnmarshal(%q) = %v, want nil", tc.in, err)
			case tc.wantErr != "" && err == nil:
				t.Fatalf("StrictUnmarshal(%q) = nil, want error containing %q", tc.in, tc.wantErr)
			case tc.wantErr != "" && !strings.Contains(err.Error(), tc.wantErr):
				t.Fatalf("StrictUnmarshal(%q) = %q, want it to contain %q", tc.in, err, tc.wantErr)
			}
		})
	}
}

func TestStrictUnmarshalOffsetIsExact(t *testing.T) {
	in := `{"listen": "x", "data": @}`
	var c Config
	err := StrictUnmarshal([]byte(in), &c)
	if err == nil || !strings.Contains(err.Error(), "at byte") {
		t.Fatalf("got %v, want a syntax error with its offset", err)
	}
	// The reported offset is the decoder's (just past the offending byte).
	if !strings.Contains(err.Error(), "(at byte 25)") {
		t.Errorf("got %q, want offset 25 (the '@' is byte %d, 0-based)", err, strings.IndexByte(in, '@'))
	}
}

func TestLoadConfigFile(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.json")
	if err := os.WriteFile(good, []byte(`{"instance_name":"hq","shutdown_timeout":"3s",
		"modules":[{"module":"token","config":{"flush_interval":2}}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := LoadConfigFile(good)
	if err != nil {
		t.Fatal(err)
	}
	if c.InstanceName != "hq" || c.ShutdownTimeout.D() != 3*time.Second || len(c.Modules) != 1 ||
		c.Modules[0].Module != "token" || string(c.Modules[0].Config) != `{"flush_interval":2}` {
		t.Errorf("decoded %+v", c)
	}
	bad := filepath.Join(dir, "bad.json")
	if err := os.WriteFile(bad, []byte(`{"instance":"hq"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadConfigFile(bad); err == nil || !strings.Contains(err.Error(), bad) {
		t.Errorf("LoadConfigFile(bad) = %v, want an error naming the file", err)
	}
	if _, err := LoadConfigFile(filepath.Join(dir, "missing.json")); err == nil {
		t.Error("LoadConfigFile(missing) = nil error")
	}
}

func TestDurationUnmarshal(t *testing.T) {
	tests := []struct {
		in      string
		want    time.Duration
		wantErr bool
	}{
		{`"20m"`, 20 * time.Minute, false},
		{`"1h30m"`, 90 * time.Minute, false},
		{`"250ms"`, 250 * time.Millisecond, false},
		{`90`, 90 * time.Second, false},
		{`1.5`, 1500 * time.Millisecond, false},
		{`0`, 0, false},
		{` 7 `, 7 * time.Second, false},
		{`"abc"`, 0, true},
		{`"20"`, 0, true}, // a string needs a unit
		{`""`, 0, true},
		{`true`, 0, true},
		{`[1]`, 0, true},
		{`{"s":1}`, 0, true},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			var d Duration
			err := json.Unmarshal([]byte(tc.in), &d)
			if tc.wantErr {
				if err == nil {
					t.Fatalf("Unmarshal(%s) = %v, want error", tc.in, d.D())
				}
				return
			}
			if err != nil {
				t.Fatalf("Unmarshal(%s): %v", tc.in, err)
			}
			if d.D() != tc.want {
				t.Errorf("Unmarshal(%s) = %v, want %v", tc.in, d.D(), tc.want)
			}
		})
	}
}

func TestDurationInConfigAndMarshal(t *testing.T) {
	var c Config
	if err := StrictUnmarshal([]byte(`{"shutdown_timeout": 2.5}`), &c); err != nil {
		t.Fatal(err)
	}
	if c.ShutdownTimeout.D() != 2500*time.Millisecond {
		t.Errorf("shutdown_timeout = %v", c.ShutdownTimeout.D())
	}
	b, err := json.Marshal(Duration(90 * time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != `"1h30m0s"` {
		t.Errorf("Marshal = %s, want \"1h30m0s\"", b)
	}
	var back Duration
	if err := json.Unmarshal(b, &back); err != nil || back.D() != 90*time.Minute {
		t.Errorf("round trip = %v, %v", back.D(), err)
	}
}

func TestDurationNullIsNoOp(t *testing.T) {
	d := Duration(time.Second)
	if err := json.Unmarshal([]byte(`null`), &d); err != nil {
		t.Fatalf("Unmarshal(null) = %v, want nil (encoding/json convention for Unmarshalers)", err)
	}
	if d.D() != time.Second {
		t.Errorf("Unmarshal(null) changed the value to %v", d.D())
	}
}

func TestDurationOutOfRange(t *testing.T) {
	for _, in := range []string{`1e10`, `-1e10`, `1e300`} {
		var d Duration
		if err := json.Unmarshal([]byte(in), &d); err == nil {
			t.Errorf("Unmarshal(%s) = %v, want an out-of-range error", in, d.D())
		}
	}
}

func TestApplyEnv(t *testing.T) {
	env := map[string]string{
		"GATEHOUSE_INSTANCE_NAME":   "from-env",
		"GATEHOUSE_LISTEN":          ":9999",
		"GATEHOUSE_TLS_SELF_SIGNED": "true",
		"GATEHOUSE_DEMO":            "0",
		"GATEHOUSE_ADMIN_PASSWORD":  "s3cret",
		"GATEHOUSE_TIMEZONE":        "Europe/Paris",
		"INSTANCE_NAME":             "unprefixed-ignored",
	}
	c := Config{InstanceName: "from-file", Data: "/from/file", Listen: "file:1", Demo: true}
	if err := c.ApplyEnv(func(k string) string { return env[k] }); err != nil {
		t.Fatal(err)
	}
	want := Config{
		InstanceName:  "from-env",   // env overrides the file
		Data:          "/from/file", // unset env keeps the file value
		Listen:        ":9999",
		TLSSelfSigned: true,
		Demo:          false, // an explicit false overrides a true from the file
		AdminPassword: "s3cret",
		Timezone:      "Europe/Paris",
	}
	if c.InstanceName != want.InstanceName || c.Data != want.Data || c.Listen != want.Listen ||
		c.TLSSelfSigned != want.TLSSelfSigned || c.Demo != want.Demo || c.AdminPassword != want.AdminPassword ||
		c.Timezone != want.Timezone {
		t.Errorf("ApplyEnv gave %+v, want %+v", c, want)
	}

	// An empty variable does not override.
	c2 := Config{Listen: "keep", Demo: true}
	if err := c2.ApplyEnv(func(string) string { return "" }); err != nil {
		t.Fatal(err)
	}
	if c2.Listen != "keep" || !c2.Demo {
		t.Errorf("empty environment changed the config: %+v", c2)
	}
}

func TestApplyEnvBoolErrors(t *testing.T) {
	env := map[string]string{"GATEHOUSE_DEMO": "yes please", "GATEHOUSE_TLS_SELF_SIGNED": "maybe", "GATEHOUSE_LISTEN": ":1"}
	c := Config{Demo: true}
	err := c.ApplyEnv(func(k string) string { return env[k] })
	if err == nil {
		t.Fatal("ApplyEnv with bad booleans = nil")
	}
	for _, name := range []string{"GATEHOUSE_DEMO", "GATEHOUSE_TLS_SELF_SIGNED"} {
		if !strings.Contains(err.Error(), name) {
			t.Errorf("error %q does not name %s", err, name)
		}
	}
	if !c.Demo {
		t.Error("a bad boolean changed the field")
	}
	if c.Listen != ":1" {
		t.Error("string fields not applied when a boolean is bad")
	}
	for _, v := range []string{"1", "t", "TRUE", "True", "0", "f", "FALSE"} {
		var c Config
		if err := c.ApplyEnv(func(k string) string {
			if k == "GATEHOUSE_DEMO" {
				return v
			}
			return ""
		}); err != nil {
			t.Errorf("GATEHOUSE_DEMO=%q: %v", v, err)
		}
	}
}

func TestWithDefaults(t *testing.T) {
	d := Config{}.WithDefaults()
	if d.InstanceName != DefaultInstanceName || d.Data != DefaultData || d.Listen != DefaultListen ||
		d.LogLevel != "info" || d.LogFormat != "json" || d.ShutdownTimeout.D() != 10*time.Second {
		t.Errorf("defaults: %+v", d)
	}
	set := Config{InstanceName: "x", Data: "d", Listen: "l", LogLevel: "debug", LogFormat: "console",
		ShutdownTimeout: Duration(time.Second)}
	if got := set.WithDefaults(); got.InstanceName != "x" || got.Data != "d" || got.Listen != "l" ||
		got.LogLevel != "debug" || got.LogFormat != "console" || got.ShutdownTimeout.D() != time.Second {
		t.Errorf("WithDefaults overwrote set fields: %+v", got)
	}
	orig := Config{}
	_ = orig.WithDefaults()
	if orig.Listen != "" {
		t.Error("WithDefaults modified its receiver")
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		wantErr string
	}{
		{"zero", Config{}, ""},
		{"defaults", Config{}.WithDefaults(), ""},
		{"console", Config{LogFormat: "console"}, ""},
		{"tls pair", Config{TLSCert: "c.pem", TLSKey: "k.pem"}, ""},
		{"self signed", Config{TLSSelfSigned: true}, ""},
		{"timezone", Config{Timezone: "Europe/Paris"}, ""},
		{"modules", Config{Modules: []ModuleConfig{{Module: "a"}, {Module: "b"}}}, ""},
		{"cert without key", Config{TLSCert: "c.pem"}, "tls_cert and tls_key go together"},
		{"key without cert", Config{TLSKey: "k.pem"}, "tls_cert and tls_key go together"},
		{"cert and self signed", Config{TLSCert: "c", TLSKey: "k", TLSSelfSigned: true}, "tls_self_signed"},
		{"bad log format", Config{LogFormat: "xml"}, `log_format "xml"`},
		{"bad timezone", Config{Timezone: "Mars/Olympus_Mons"}, "timezone"},
		{"duplicate module", Config{Modules: []ModuleConfig{{Module: "a"}, {Module: "b"}, {Module: "a"}}},
			`modules[2]: module "a" listed twice`},
		{"missing module id", Config{Modules: []ModuleConfig{{Module: ""}}}, `modules[0]: missing "module"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("Validate() = %v, want error containing %q", err, tc.wantErr)
			}
		})
	}
	// Several problems are all reported.
	err := Config{LogFormat: "xml", TLSKey: "k", Timezone: "No/Where"}.Validate()
	if err == nil || strings.Count(err.Error(), "\n") != 2 {
		t.Errorf("want three joined errors, got %v", err)
	}
}

func TestLocation(t *testing.T) {
	if (Config{}).Location() != time.Local {
		t.Error("empty timezone should be the host's")
	}
	if loc := (Config{Timezone: "Europe/Paris"}).Location(); loc.String() != "Europe/Paris" {
		t.Errorf("Location() = %v", loc)
	}
	if (Config{Timezone: "No/Where"}).Location() != time.Local {
		t.Error("invalid timezone should fall back to the host's")
	}
}
