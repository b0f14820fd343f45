package core

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"gatehouse/db"
)

// recorder collects lifecycle calls of test modules in order.
type recorder struct {
	mu    sync.Mutex
	calls []string
}

func (r *recorder) add(s string) {
	r.mu.Lock()
	r.calls = append(r.calls, s)
	r.mu.Unlock()
}

func (r *recorder) get() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.calls)
}

// with returns the recorded calls that start with prefix.
func (r *recorder) with(prefix string) []string {
	var out []string
	for _, c := range r.get() {
		if strings.HasPrefix(c, prefix) {
			out = append(out, c)
		}
	}
	return out
}

// behaviour says how a test module misbehaves.
type behaviour struct {
	failProvision bool
	failValidate  bool
	runErr        error         // returned by Run after runDelay
	runDelay      time.Duration // with runErr
	noRun         bool
}

// lifecycleModule is a test module that records every lifecycle call.
type lifecycleModule struct {
	Value int    `json:"value"`
	Name  string `json:"name"`

	id       string
	rec      *recorder
	b        behaviour
	ctx      *Context
	sawPrior map[string]bool
}

func (m *lifecycleModule) Provision(ctx *Context) error {
	m.rec.add("provision:" + m.id)
	m.ctx = ctx
	m.sawPrior = map[string]bool{}
	for _, id := range []string{"a", "b", "c"} {
		_, ok := ctx.Module(id)
		m.sawPrior[id] = ok
	}
	if m.b.failProvision {
		return errors.New("provision exploded")
	}
	return nil
}

func (m *lifecycleModule) Validate() error {
	m.rec.add("validate:" + m.id)
	if m.b.failValidate {
		return errors.New("validate exploded")
	}
	return nil
}

func (m *lifecycleModule) Run(ctx context.Context) error {
	if m.b.noRun {
		return nil
	}
	m.rec.add("run:" + m.id)
	if m.b.runErr != nil {
		select {
		case <-time.After(m.b.runDelay):
			return m.b.runErr
		case <-ctx.Done():
			return nil
		}
	}
	<-ctx.Done()
	m.rec.add("run-done:" + m.id)
	return ctx.Err() // context.Canceled must not count as a failure
}

func (m *lifecycleModule) Cleanup() error {
	m.rec.add("cleanup:" + m.id)
	return nil
}

var (
	_ Provisioner  = (*lifecycleModule)(nil)
	_ Validator    = (*lifecycleModule)(nil)
	_ Runner       = (*lifecycleModule)(nil)
	_ CleanerUpper = (*lifecycleModule)(nil)
)

// plainModule implements no optional interface at all.
type plainModule struct {
	X string `json:"x"`
}

// testRegistry registers lifecycle modules a, b and c (with the given behaviours) and "plain".
func testRegistry(rec *recorder, bs map[string]behaviour) *Registry {
	reg := NewRegistry()
	for _, id := range []string{"a", "b", "c"} {
		reg.Register(ModuleInfo{ID: id, New: func() Module {
			return &lifecycleModule{id: id, rec: rec, b: bs[id]}
		}})
	}
	reg.Register(ModuleInfo{ID: "plain", New: func() Module { return new(plainModule) }})
	return reg
}

func testDB(t *testing.T) *db.DB {
	t.Helper()
	d, err := db.Open(context.Background(), t.TempDir(), zerolog.Nop(), db.Options{})
	if err != nil {
		t.Fatalf("db.Open: %v", err)
	}
	t.Cleanup(func() { _ = d.Close() })
	return d
}

func modules(ids ...string) []ModuleConfig {
	out := make([]ModuleConfig, len(ids))
	for i, id := range ids {
		out[i] = ModuleConfig{Module: id}
	}
	return out
}

func TestAppProvisionsAndValidatesInOrder(t *testing.T) {
	rec := &recorder{}
	d := testDB(t)
	cfg := Config{Modules: modules("a", "b", "c", "plain")}
	cfg.Modules[1].Config = json.RawMessage(`{"value": 7, "name": "bee"}`)
	cfg.Modules[3].Config = json.RawMessage(`{"x": "y"}`)
	a, err := NewApp(cfg, testRegistry(rec, nil), Deps{Log: zerolog.Nop(), DB: d})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.cleanup)
	want := []string{"provision:a", "provision:b", "provision:c", "validate:a", "validate:b", "validate:c"}
	if got := rec.get(); !slices.Equal(got, want) {
		t.Errorf("calls = %v, want %v", got, want)
	}
	if got := a.ModuleIDs(); !slices.Equal(got, []string{"a", "b", "c", "plain"}) {
		t.Errorf("ModuleIDs = %v", got)
	}
	mb, ok := a.Module("b")
	if !ok {
		t.Fatal("Module(b) missing")
	}
	b := mb.(*lifecycleModule)
	if b.Value != 7 || b.Name != "bee" {
		t.Errorf("module b config not decoded: %+v", b)
	}
	if mp, _ := a.Module("plain"); mp.(*plainModule).X != "y" {
		t.Errorf("plain module config not decoded: %+v", mp)
	}
	if _, ok := a.Module("nope"); ok {
		t.Error("Module(nope) found")
	}
	// The Context a module gets.
	if b.ctx.ID() != "b" || b.ctx.DB() != d || b.ctx.Bus() != a.Bus() || b.ctx.Methods() != a.Methods() ||
		b.ctx.Config().Listen != DefaultListen || b.ctx.Metrics() == nil {
		t.Errorf("module context not wired: id %q", b.ctx.ID())
	}
	// Provision sees the modules provisioned before it, not those after.
	if !b.sawPrior["a"] || b.sawPrior["c"] {
		t.Errorf("module b saw %v during Provision, want a but not c", b.sawPrior)
	}
}

func TestAppProvisionFailureCleansUpInReverse(t *testing.T) {
	rec := &recorder{}
	reg := testRegistry(rec, map[string]behaviour{"c": {failProvision: true}})
	_, err := NewApp(Config{Modules: modules("a", "b", "c")}, reg, Deps{Log: zerolog.Nop(), DB: testDB(t)})
	if err == nil {
		t.Fatal("NewApp succeeded although module c failed Provision")
	}
	if !strings.Contains(err.Error(), `module "c"`) || !strings.Contains(err.Error(), "provision exploded") {
		t.Errorf("error %q does not name module c and its cause", err)
	}
	want := []string{"provision:a", "provision:b", "provision:c", "cleanup:c", "cleanup:b", "cleanup:a"}
	if got := rec.get(); !slices.Equal(got, want) {
		t.Errorf("calls = %v, want %v", got, want)
	}
}

func TestAppProvisionFailureInTheMiddle(t *testing.T) {
	rec := &recorder{}
	reg := testRegistry(rec, map[string]behaviour{"b": {failProvision: true}})
	_, err := NewApp(Config{Modules: modules("a", "b", "c")}, reg, Deps{Log: zerolog.Nop(), DB: testDB(t)})
	if err == nil || !strings.Contains(err.Error(), `module "b"`) {
		t.Fatalf("NewApp = %v, want an error naming module b", err)
	}
	want := []string{"provision:a", "provision:b", "cleanup:b", "cleanup:a"}
	if got := rec.get(); !slices.Equal(got, want) {
		t.Errorf("calls = %v, want %v (c never provisioned, so never cleaned up)", got, want)
	}
}

func TestAppValidateFailureCleansUpAll(t *testing.T) {
	rec := &recorder{}
	reg := testRegistry(rec, map[string]behaviour{"b": {failValidate: true}})
	_, err := NewApp(Config{Modules: modules("a", "b", "c")}, reg, Deps{Log: zerolog.Nop(), DB: testDB(t)})
	if err == nil || !strings.Contains(err.Error(), `module "b": validate`) {
		t.Fatalf("NewApp = %v, want a validate error naming module b", err)
	}
	want := []string{"provision:a", "provision:b", "provision:c", "validate:a", "validate:b",
		"cleanup:c", "cleanup:b", "cleanup:a"}
	if got := rec.get(); !slices.Equal(got, want) {
		t.Errorf("calls = %v, want %v", got, want)
	}
}

func TestAppUnknownModule(t *testing.T) {
	rec := &recorder{}
	_, err := NewApp(Config{Modules: modules("a", "door.gpio", "b")}, testRegistry(rec, nil),
		Deps{Log: zerolog.Nop(), DB: testDB(t)})
	if err == nil {
		t.Fatal("NewApp accepted an unknown module")
	}
	for _, want := range []string{`"door.gpio"`, "[a b c plain]"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %s", err, want)
		}
	}
	if got, want := rec.get(), []string{"provision:a", "cleanup:a"}; !slices.Equal(got, want) {
		t.Errorf("calls = %v, want %v", got, want)
	}
}

func TestAppStrictModuleConfig(t *testing.T) {
	for _, tc := range []struct{ name, config, want string }{
		{"unknown field", `{"value": 1, "valeu": 2}`, `unknown field "valeu"`},
		{"wrong type", `{"value": "one"}`, "cannot unmarshal"},
		{"trailing data", `{"value": 1} {}`, "trailing data"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := &recorder{}
			cfg := Config{Modules: modules("a", "b")}
			cfg.Modules[1].Config = json.RawMessage(tc.config)
			_, err := NewApp(cfg, testRegistry(rec, nil), Deps{Log: zerolog.Nop(), DB: testDB(t)})
			if err == nil {
				t.Fatal("NewApp accepted a bad module config")
			}
			if !strings.Contains(err.Error(), `module "b": config`) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q, want module b config error containing %q", err, tc.want)
			}
			if got, want := rec.get(), []string{"provision:a", "cleanup:a"}; !slices.Equal(got, want) {
				t.Errorf("calls = %v, want %v", got, want)
			}
		})
	}
	// A null config is the same as none.
	cfg := Config{Modules: modules("a")}
	cfg.Modules[0].Config = json.RawMessage(`null`)
	a, err := NewApp(cfg, testRegistry(&recorder{}, nil), Deps{Log: zerolog.Nop(), DB: testDB(t)})
	if err != nil {
		t.Fatalf("null module config: %v", err)
	}
	a.cleanup()
}

func TestAppInvalidConfig(t *testing.T) {
	rec := &recorder{}
	_, err := NewApp(Config{LogFormat: "xml", Modules: modules("a")}, testRegistry(rec, nil),
		Deps{Log: zerolog.Nop(), DB: testDB(t)})
	if err == nil || !strings.HasPrefix(err.Error(), "config:") {
		t.Fatalf("NewApp = %v, want a config error", err)
	}
	if got := rec.get(); len(got) != 0 {
		t.Errorf("modules touched despite invalid config: %v", got)
	}
}

// waitFor polls cond until it holds or the timeout expires.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func health(a *App) int {
	rr := httptest.NewRecorder()
	a.Handler().ServeHTTP(rr, httptest.NewRequest(http.MethodGet, "/healthz", nil))
	return rr.Code
}

func TestAppRunUntilCancelled(t *testing.T) {
	rec := &recorder{}
	a, err := NewApp(Config{Modules: modules("a", "plain", "b", "c")}, testRegistry(rec, nil),
		Deps{Log: zerolog.Nop(), DB: testDB(t)})
	if err != nil {
		t.Fatal(err)
	}
	if code := health(a); code != http.StatusServiceUnavailable {
		t.Errorf("healthz before Run = %d, want 503", code)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()

	waitFor(t, "three runners", func() bool { return len(rec.with("run:")) == 3 })
	waitFor(t, "healthy", func() bool { return health(a) == http.StatusOK })
	select {
	case err := <-done:
		t.Fatalf("Run returned early: %v", err)
	default:
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run after cancel = %v, want nil", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	if got := rec.with("run-done:"); len(got) != 3 {
		t.Errorf("runners stopped: %v, want all three", got)
	}
	if got, want := rec.with("cleanup:"), []string{"cleanup:c", "cleanup:b", "cleanup:a"}; !slices.Equal(got, want) {
		t.Errorf("cleanup calls = %v, want %v", got, want)
	}
	// Cleanup comes after every runner stopped.
	calls := rec.get()
	if slices.Index(calls, "cleanup:c") < slices.Index(calls, "run-done:a") ||
		slices.Index(calls, "cleanup:c") < slices.Index(calls, "run-done:c") {
		t.Errorf("cleanup before runners stopped: %v", calls)
	}
	if _, err := a.Bus().Subscribe(SubscribeOptions{}, ">"); !errors.Is(err, ErrBusClosed) {
		t.Errorf("bus still open after Run: %v", err)
	}
	if code := health(a); code != http.StatusServiceUnavailable {
		t.Errorf("healthz after Run = %d, want 503", code)
	}
}

func TestAppRunnerErrorStopsApp(t *testing.T) {
	rec := &recorder{}
	boom := errors.New("reader unplugged")
	reg := testRegistry(rec, map[string]behaviour{"b": {runErr: boom, runDelay: 20 * time.Millisecond}})
	a, err := NewApp(Config{Modules: modules("a", "b", "c")}, reg, Deps{Log: zerolog.Nop(), DB: testDB(t)})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- a.Run(context.Background()) }()
	select {
	case err := <-done:
		if !errors.Is(err, boom) || !strings.Contains(err.Error(), `module "b": run`) {
			t.Errorf("Run = %v, want the runner's error naming module b", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after a runner failed")
	}
	if got := rec.with("run-done:"); len(got) != 2 {
		t.Errorf("other runners stopped: %v, want a and c", got)
	}
	if got, want := rec.with("cleanup:"), []string{"cleanup:c", "cleanup:b", "cleanup:a"}; !slices.Equal(got, want) {
		t.Errorf("cleanup calls = %v, want %v", got, want)
	}
}

func TestAppRunnerReturningNilEarlyDoesNotStopApp(t *testing.T) {
	rec := &recorder{}
	reg := testRegistry(rec, map[string]behaviour{"a": {noRun: true}})
	a, err := NewApp(Config{Modules: modules("a", "b")}, reg, Deps{Log: zerolog.Nop(), DB: testDB(t)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	waitFor(t, "runner b", func() bool { return len(rec.with("run:b")) == 1 })
	select {
	case err := <-done:
		t.Fatalf("Run returned %v when a runner finished with nil", err)
	case <-time.After(50 * time.Millisecond):
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run = %v", err)
	}
}

func TestRegistry(t *testing.T) {
	reg := NewRegistry()
	newFn := func() Module { return new(plainModule) }
	reg.Register(ModuleInfo{ID: "door.gpio", New: newFn})
	reg.Register(ModuleInfo{ID: "auth", New: newFn})
	reg.Register(ModuleInfo{ID: "reader.osdp_v2", New: newFn})
	if got := reg.IDs(); !slices.Equal(got, []string{"auth", "door.gpio", "reader.osdp_v2"}) {
		t.Errorf("IDs = %v", got)
	}
	if _, ok := reg.Lookup("auth"); !ok {
		t.Error("Lookup(auth) failed")
	}
	if _, ok := reg.Lookup("nope"); ok {
		t.Error("Lookup(nope) succeeded")
	}
	for _, tc := range []struct {
		name string
		info ModuleInfo
	}{
		{"duplicate", ModuleInfo{ID: "auth", New: newFn}},
		{"empty id", ModuleInfo{ID: "", New: newFn}},
		{"upper case", ModuleInfo{ID: "Door", New: newFn}},
		{"empty label", ModuleInfo{ID: "door..gpio", New: newFn}},
		{"trailing dot", ModuleInfo{ID: "door.", New: newFn}},
		{"leading digit", ModuleInfo{ID: "1door", New: newFn}},
		{"nil constructor", ModuleInfo{ID: "fine"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Errorf("Register(%+v) did not panic", tc.info.ID)
				}
			}()
			reg.Register(tc.info)
		})
	}
}
