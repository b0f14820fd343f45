package main

import (
	"crypto/tls"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"gatehouse/core"
	"gatehouse/modules/all"
)

// readmeConfig returns the configuration example of the README's Configuration section.
func readmeConfig(t *testing.T) []byte {
	t.Helper()
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, sec, ok := strings.Cut(string(b), "## Configuration")
	_, block, ok2 := strings.Cut(sec, "```json\n")
	block, _, ok3 := strings.Cut(block, "```")
	if !ok || !ok2 || !ok3 {
		t.Fatal("no ```json block in the README's Configuration section")
	}
	return []byte(block)
}

func defaultIDs() []string {
	var ids []string
	for _, mc := range all.DefaultModules() {
		ids = append(ids, mc.Module)
	}
	return ids
}

// effective runs check-config and decodes the effective configuration it prints.
func effective(t *testing.T, args ...string) core.Config {
	t.Helper()
	code, out, errOut := runCmd(append([]string{"check-config"}, args...), "")
	if code != 0 {
		t.Fatalf("check-config %q: exit %d: %s", args, code, errOut)
	}
	var cfg core.Config
	if err := json.Unmarshal([]byte(out), &cfg); err != nil {
		t.Fatalf("check-config output is not a configuration: %v\n%s", err, out)
	}
	return cfg
}

func healthModules(t *testing.T, url string) []string {
	t.Helper()
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	resp, err := c.Get(url + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var h struct {
		Modules []string `json:"modules"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&h); err != nil {
		t.Fatal(err)
	}
	return h.Modules
}

// TestREADMEConfigRunsTheWholeServer: the README's example configures four modules; every
// standard module must still load, in the default order, and check-config must show each one
// with its defaults filled in.
func TestREADMEConfigRunsTheWholeServer(t *testing.T) {
	file := filepath.Join(t.TempDir(), "gatehouse.json")
	if err := os.WriteFile(file, readmeConfig(t), 0o600); err != nil {
		t.Fatal(err)
	}
	eff := effective(t, "--config", file)
	var ids []string
	for _, mc := range eff.Modules {
		ids = append(ids, mc.Module)
		if mc.Disabled || len(mc.Config) == 0 {
			t.Errorf("effective module %s: disabled %v config %s", mc.Module, mc.Disabled, mc.Config)
		}
	}
	if !slices.Equal(ids, defaultIDs()) {
		t.Errorf("effective modules %v, want every standard module %v", ids, defaultIDs())
	}
	find := func(id string) map[string]any {
		for _, mc := range eff.Modules {
			if mc.Module == id {
				var v map[string]any
				if err := json.Unmarshal(mc.Config, &v); err != nil {
					t.Fatal(err)
				}
				return v
			}
		}
		t.Fatalf("no module %s", id)
		return nil
	}
	// The file's values win; what it leaves out shows its default.
	if v := find("auth")["min_password_length"]; v != 10.0 {
		t.Errorf("auth min_password_length = %v, want the file's 10", v)
	}
	if v := find("tokenapi")["max_user_sessions"]; v != 100.0 {
		t.Errorf("tokenapi max_user_sessions = %v, want its default 100", v)
	}
	if v := find("eventlog")["retention"]; v != "2160h0m0s" {
		t.Errorf("eventlog retention = %v, want its default 2160h0m0s", v)
	}
	if v := find("wsapi")["path"]; v != "/websocket" {
		t.Errorf("wsapi path = %v", v)
	}

	url, _, stop := startServe(t, []string{"--config", file, "--data", t.TempDir(), "--listen", "127.0.0.1:0"},
		map[string]string{"GATEHOUSE_ADMIN_PASSWORD": "long-enough-password"})
	defer stop()
	if got := healthModules(t, url); !slices.Equal(got, defaultIDs()) {
		t.Errorf("serve with the README's config loads %v, want %v", got, defaultIDs())
	}
}

// TestCheckConfigHidesSecrets: the effective configuration printed by check-config does not
// show a webhook's signing secret, header values or URL credentials.
func TestCheckConfigHidesSecrets(t *testing.T) {
	file := filepath.Join(t.TempDir(), "gatehouse.json")
	body := `{"modules": [{"module": "webhook", "config": {"targets": [{"name": "siem", "url": "https://user:pw-in-url@siem.example/in?key=query-secret",
		"topics": ["access.>"], "secret": "signing-secret", "headers": {"Authorization": "Bearer header-secret"}}]}}]}`
	if err := os.WriteFile(file, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runCmd([]string{"check-config", "--config", file}, "")
	if code != 0 {
		t.Fatalf("check-config: exit %d: %s", code, errOut)
	}
	for _, secret := range []string{"signing-secret", "header-secret", "pw-in-url", "query-secret"} {
		if strings.Contains(out+errOut, secret) {
			t.Errorf("check-config printed %q:\n%s", secret, out)
		}
	}
	if !strings.Contains(out, "siem.example") {
		t.Errorf("the webhook target is missing from the effective configuration:\n%s", out)
	}
}

// TestConfigDisablesAModule: "disabled": true leaves a module out of serve and check-config.
func TestConfigDisablesAModule(t *testing.T) {
	file := filepath.Join(t.TempDir(), "gatehouse.json")
	if err := os.WriteFile(file, []byte(`{"modules": [{"module": "demo", "disabled": true}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	want := slices.DeleteFunc(defaultIDs(), func(id string) bool { return id == "demo" })
	eff := effective(t, "--config", file)
	for _, mc := range eff.Modules {
		if mc.Module == "demo" && !mc.Disabled {
			t.Errorf("check-config shows demo enabled: %+v", mc)
		}
	}
	url, _, stop := startServe(t, []string{"--config", file, "--data", t.TempDir(), "--listen", "127.0.0.1:0"},
		map[string]string{"GATEHOUSE_ADMIN_PASSWORD": "long-enough-password"})
	defer stop()
	if got := healthModules(t, url); !slices.Equal(got, want) {
		t.Errorf("serve loads %v, want %v", got, want)
	}
}

// TestCheckConfigRejectsWhatServeRejects: a bad listen address, a too-short admin password, a
// module's bad setting; and JSON syntax errors name their line and column.
func TestCheckConfigRejectsWhatServeRejects(t *testing.T) {
	dir := t.TempDir()
	for name, c := range map[string]struct {
		body, env, want string
	}{
		"listen without port":        {`{"listen": "localhost"}`, "", "listen"},
		"listen port too high":       {`{"listen": "127.0.0.1:99999"}`, "", "listen"},
		"short admin password":       {`{}`, "short", "ADMIN_PASSWORD"},
		"bad module value":           {`{"modules": [{"module": "token", "config": {"leosac": {"idle": "1ms", "max": "1h"}}}]}`, "", "idle must be"},
		"syntax error":               {"{\n  \"listen\": \"127.0.0.1:8080\",\n  \"data\": tru\n}", "", "line 3, column"},
		"type error":                 {"{\n\n  \"demo\": \"yes\"\n}", "", "line 3, column"},
		"listed twice":               {`{"modules": [{"module": "auth"}, {"module": "auth"}]}`, "", "twice"},
		"sysadm_listen without port": {`{"sysadm_listen": "localhost"}`, "", "sysadm_listen"},
		"sysadm_listen bad port":     {`{"sysadm_listen": "127.0.0.1:sysadm"}`, "", "sysadm_listen"},
		"sysadm_listen, no sysadm":   {`{"sysadm_listen": "127.0.0.1:0", "modules": [{"module": "sysadm", "disabled": true}]}`, "", "sysadm_listen"},
	} {
		p := filepath.Join(dir, strings.ReplaceAll(name, " ", "_")+".json")
		if err := os.WriteFile(p, []byte(c.body), 0o600); err != nil {
			t.Fatal(err)
		}
		environ := map[string]string{}
		if c.env != "" {
			environ["GATEHOUSE_ADMIN_PASSWORD"] = c.env
		}
		var out, errOut strings.Builder
		code := run(t.Context(), []string{"check-config", "--config", p}, nil, &out, &errOut, env(environ))
		if code == 0 || !strings.Contains(errOut.String(), c.want) {
			t.Errorf("%s: check-config exit %d: %s (want an error containing %q)", name, code, errOut.String(), c.want)
		}
		data := filepath.Join(dir, "data-"+strings.ReplaceAll(name, " ", "_"))
		errOut.Reset()
		code = run(t.Context(), []string{"serve", "--config", p, "--data", data}, nil, &out, &errOut, env(environ))
		if code == 0 || !strings.Contains(errOut.String(), c.want) {
			t.Errorf("%s: serve exit %d: %s (want an error containing %q)", name, code, errOut.String(), c.want)
		}
		if _, err := os.Stat(data); err == nil {
			t.Errorf("%s: serve created the data directory before refusing the configuration", name)
		}
	}
}

// TestSysadmListenSettings: --sysadm-listen, GATEHOUSE_SYSADM_LISTEN and the file's
// sysadm_listen set the sysadm listener, flags winning over the environment over the file; it
// is off by default.
func TestSysadmListenSettings(t *testing.T) {
	if cfg := effective(t); cfg.SysadmListen != "" {
		t.Errorf("default sysadm_listen %q, want off", cfg.SysadmListen)
	}
	p := filepath.Join(t.TempDir(), "c.json")
	if err := os.WriteFile(p, []byte(`{"sysadm_listen": "127.0.0.1:12150"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if cfg := effective(t, "--config", p); cfg.SysadmListen != "127.0.0.1:12150" {
		t.Errorf("from the file: %q", cfg.SysadmListen)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"check-config", "--config", p}, "127.0.0.1:12151"},
		{[]string{"check-config", "--config", p, "--sysadm-listen", "[::1]:12152"}, "[::1]:12152"},
	} {
		var out, errOut strings.Builder
		if code := run(t.Context(), c.args, nil, &out, &errOut, env(map[string]string{"GATEHOUSE_SYSADM_LISTEN": "127.0.0.1:12151"})); code != 0 {
			t.Fatalf("%q: exit %d: %s", c.args, code, errOut.String())
		}
		var cfg core.Config
		if err := json.Unmarshal([]byte(out.String()), &cfg); err != nil {
			t.Fatal(err)
		}
		if cfg.SysadmListen != c.want || !strings.Contains(errOut.String(), "sysadm listen "+c.want) {
			t.Errorf("%q: sysadm_listen %q (%s), want %q", c.args, cfg.SysadmListen, errOut.String(), c.want)
		}
	}
}

// TestCheckConfigSMTP: check-config prints the SMTP notifier's effective configuration, its
// defaults filled and its password hidden, and rejects a server URL it cannot use.
func TestCheckConfigSMTP(t *testing.T) {
	file := filepath.Join(t.TempDir(), "gatehouse.json")
	body := `{"modules": [{"module": "smtp", "config": {"servers": [{"url": "smtp://mail.example.com:587",
		"from": "gatehouse@example.com", "username": "gh", "password": "smtp-password-secret"}],
		"rules": [{"topics": ["door.*.forced"], "to": ["security@example.com"]}]}}]}`
	if err := os.WriteFile(file, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runCmd([]string{"check-config", "--config", file}, "")
	if code != 0 {
		t.Fatalf("check-config: exit %d: %s", code, errOut)
	}
	if strings.Contains(out+errOut, "smtp-password-secret") {
		t.Errorf("check-config printed the SMTP password:\n%s", out)
	}
	for _, want := range []string{`"max_per_minute": 30`, `"timeout": 30000`, `"verify_peer": true`, `"password": "***"`, `"digest": 100`} {
		if !strings.Contains(out, want) {
			t.Errorf("check-config lacks %s:\n%s", want, out)
		}
	}
	bad := strings.Replace(body, "smtp://mail.example.com:587", "http://mail.example.com", 1)
	if err := os.WriteFile(file, []byte(bad), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _, errOut := runCmd([]string{"check-config", "--config", file}, ""); code == 0 || !strings.Contains(errOut, "url") {
		t.Errorf("check-config accepted an http:// SMTP server: exit %d %s", code, errOut)
	}
}
