package core

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/rs/zerolog"
	"golang.org/x/sync/errgroup"

	"gatehouse/db"
)

// Context is what a module gets in Provision: its logger and handles on the shared parts of
// the process. It is valid for the module's whole life.
type Context struct {
	app *App
	id  string
	// Logger is the module's logger, tagged with module=<id>.
	Logger zerolog.Logger
}

// ID returns the module's ID.
func (c *Context) ID() string { return c.id }

// Config returns the process configuration (with defaults applied).
func (c *Context) Config() Config { return c.app.cfg }

// DB returns the database.
func (c *Context) DB() *db.DB { return c.app.db }

// Bus returns the message bus.
func (c *Context) Bus() *Bus { return c.app.bus }

// Methods returns the method registry every dialect dispatches through.
func (c *Context) Methods() *Methods { return c.app.methods }

// Metrics returns the Prometheus registerer behind /metrics.
func (c *Context) Metrics() prometheus.Registerer { return c.app.metrics }

// Handle registers an HTTP handler on the one listener, with net/http ServeMux patterns
// ("GET /healthz", "/websocket").
func (c *Context) Handle(pattern string, h http.Handler) { c.app.mux.Handle(pattern, h) }

// HandleSysadm registers an HTTP handler on the sysadm listener (Config.SysadmListen), which
// serves nothing else. A websocket upgrade request for "/" on the main listener (and on the Unix
// socket) is served by this mux too: the sysadm clients connect to the root path.
func (c *Context) HandleSysadm(pattern string, h http.Handler) {
	c.app.sysadmMux.Handle(pattern, h)
	c.app.sysadmRoutes = true
}

// LogRing returns the recent log lines kept in memory (nil when the process keeps none).
func (c *Context) LogRing() *LogRing { return c.app.logRing }

// Out is where one-time messages for the operator go (the generated admin password).
func (c *Context) Out() io.Writer { return c.app.out }

// Module returns another module that was provisioned before this one, by ID. Modules that
// depend on each other are ordered accordingly in the configuration.
func (c *Context) Module(id string) (Module, bool) {
	for _, m := range c.app.mods {
		if m.id == id && m.provisioned {
			return m.value, true
		}
	}
	return nil, false
}

// ModuleIDs returns the IDs of the loaded modules in configuration order.
func (c *Context) ModuleIDs() []string { return c.app.ModuleIDs() }

// Started returns when the App was created (for uptime).
func (c *Context) Started() time.Time { return c.app.started }

// Secrets returns the sealer of the data directory's secret key (SecretKeyFile), loading or
// creating the key on first use.
func (c *Context) Secrets() (*Secrets, error) {
	a := c.app
	a.secretsOnce.Do(func() { a.secrets, a.secretsErr = LoadSecrets(a.cfg.Data) })
	return a.secrets, a.secretsErr
}

// Restart asks the process to restart its modules in-process (Leosac's restart); it is a
// no-op when the process was not started with restart support.
func (c *Context) Restart() {
	if c.app.restart != nil {
		c.app.restart()
	}
}

type loadedModule struct {
	id          string
	value       Module
	provisioned bool
}

// Deps are the parts an App is built on; the caller owns and closes them.
type Deps struct {
	Log     zerolog.Logger
	DB      *db.DB
	Out     io.Writer // operator messages; nil means io.Discard
	Restart func()    // asks the caller to restart the App; may be nil
	LogRing *LogRing  // recent log lines; may be nil
}

// App is a set of provisioned modules plus the HTTP handler they share. Build it with NewApp,
// then Serve it. An App runs once; a restart builds a new one on the same database.
type App struct {
	cfg     Config
	log     zerolog.Logger
	db      *db.DB
	out     io.Writer
	restart func()
	logRing *LogRing
	bus     *Bus
	methods *Methods
	metrics *prometheus.Registry
	mux     *http.ServeMux
	// sysadmMux holds the routes of the sysadm listener (HandleSysadm); sysadmRoutes tells
	// whether a module registered any.
	sysadmMux    *http.ServeMux
	sysadmRoutes bool
	mods         []*loadedModule
	started      time.Time
	healthy      atomic.Bool

	secretsOnce sync.Once
	secrets     *Secrets
	secretsErr  error
}

// NewApp decodes, provisions and validates the configured modules in configuration order. If
// any step fails, the modules provisioned so far are cleaned up in reverse order and the error
// names the module.
func NewApp(cfg Config, reg *Registry, deps Deps) (*App, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	if deps.Out == nil {
		deps.Out = io.Discard
	}
	metrics := prometheus.NewRegistry()
	metrics.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	a := &App{
		cfg:       cfg,
		log:       deps.Log,
		db:        deps.DB,
		out:       deps.Out,
		restart:   deps.Restart,
		logRing:   deps.LogRing,
		bus:       NewBus(deps.Log.With().Str("module", "bus").Logger(), time.Second),
		methods:   NewMethods(metrics),
		metrics:   metrics,
		mux:       http.NewServeMux(),
		sysadmMux: http.NewServeMux(),
		started:   time.Now(),
	}
	if a.db != nil {
		metrics.MustRegister(
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "gatehouse_db_failing",
				Help: "1 while the database cannot commit (disk full, I/O error), until a probe write succeeds; 0 otherwise."},
				func() float64 {
					if a.db.Health().OK {
						return 0
					}
					return 1
				}),
			prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "gatehouse_db_storage_errors_total",
				Help: "Statements and commits that failed because of the storage (disk full, I/O error, read-only, corrupt)."},
				func() float64 { return float64(a.db.Health().Errors) }),
		)
	}
	a.mux.HandleFunc("GET /healthz", a.serveHealth)
	a.mux.Handle("GET /metrics", promhttp.HandlerFor(metrics, promhttp.HandlerOpts{}))

	for _, mc := range cfg.EnabledModules() {
		val, err := decodeModule(mc, reg)
		if err != nil {
			a.cleanup()
			return nil, err
		}
		lm := &loadedModule{id: mc.Module, value: val}
		a.mods = append(a.mods, lm)
		if p, ok := val.(Provisioner); ok {
			ctx := &Context{app: a, id: mc.Module, Logger: deps.Log.With().Str("module", mc.Module).Logger()}
			lm.provisioned = true // Cleanup runs even after a failed Provision
			if err := p.Provision(ctx); err != nil {
				a.cleanup()
				return nil, fmt.Errorf("module %q: provision: %w", mc.Module, err)
			}
		}
		lm.provisioned = true
	}
	for _, m := range a.mods {
		if v, ok := m.value.(Validator); ok {
			if err := v.Validate(); err != nil {
				a.cleanup()
				return nil, fmt.Errorf("module %q: validate: %w", m.id, err)
			}
		}
	}
	return a, nil
}

// decodeModule returns a new value of the module mc names, with mc's configuration decoded
// strictly into it and its defaults applied (Defaulter).
func decodeModule(mc ModuleConfig, reg *Registry) (Module, error) {
	info, ok := reg.Lookup(mc.Module)
	if !ok {
		return nil, fmt.Errorf("module %q: not built into this binary (known: %v)", mc.Module, reg.IDs())
	}
	val := info.New()
	if len(mc.Config) > 0 && string(mc.Config) != "null" {
		if err := StrictUnmarshal(mc.Config, val); err != nil {
			return nil, fmt.Errorf("module %q: config: %w", mc.Module, err)
		}
	}
	if d, ok := val.(Defaulter); ok {
		d.ApplyDefaults()
	}
	return val, nil
}

// ModuleValue returns the decoded, defaulted configuration value of the enabled module id of
// cfg (for offline commands that need a module's settings without provisioning it); ok is
// false when cfg does not enable it.
func ModuleValue(cfg Config, reg *Registry, id string) (_ Module, ok bool, _ error) {
	for _, mc := range cfg.EnabledModules() {
		if mc.Module == id {
			v, err := decodeModule(mc, reg)
			return v, err == nil, err
		}
	}
	return nil, false, nil
}

// SysadmModuleID is the module that serves the sysadm listener (Config.SysadmListen).
const SysadmModuleID = "sysadm"

// CheckModules decodes every enabled module of cfg with its defaults applied and runs its
// Validate and CheckConfig, without side effects, and returns the effective configuration: cfg
// with each module's config replaced by its decoded, defaulted value marshalled to JSON,
// secrets redacted (SecretRedactor). Config.SysadmListen requires the SysadmModuleID module. Every problem found is reported, joined. NewServer runs it
// before creating anything; check-config prints its result.
func CheckModules(cfg Config, reg *Registry) (Config, error) {
	var errs []error
	if cfg.SysadmListen != "" && !slices.ContainsFunc(cfg.EnabledModules(), func(mc ModuleConfig) bool { return mc.Module == SysadmModuleID }) {
		errs = append(errs, errors.New("sysadm_listen is set but no module serves it: enable the sysadm module or drop sysadm_listen"))
	}
	eff := cfg
	eff.Modules = make([]ModuleConfig, 0, len(cfg.Modules))
	for _, mc := range cfg.Modules {
		if mc.Disabled {
			if _, ok := reg.Lookup(mc.Module); !ok {
				errs = append(errs, fmt.Errorf("module %q: not built into this binary (known: %v)", mc.Module, reg.IDs()))
			}
			eff.Modules = append(eff.Modules, ModuleConfig{Module: mc.Module, Disabled: true})
			continue
		}
		val, err := decodeModule(mc, reg)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if v, ok := val.(Validator); ok {
			if err := v.Validate(); err != nil {
				errs = append(errs, fmt.Errorf("module %q: validate: %w", mc.Module, err))
			}
		}
		if c, ok := val.(ConfigChecker); ok {
			if err := c.CheckConfig(cfg); err != nil {
				errs = append(errs, fmt.Errorf("module %q: %w", mc.Module, err))
			}
		}
		if r, ok := val.(SecretRedactor); ok {
			r.RedactSecrets()
		}
		b, err := json.Marshal(val)
		if err != nil {
			errs = append(errs, fmt.Errorf("module %q: marshal its configuration: %w", mc.Module, err))
			continue
		}
		eff.Modules = append(eff.Modules, ModuleConfig{Module: mc.Module, Config: b})
	}
	return eff, errors.Join(errs...)
}

// ModuleIDs returns the IDs of the loaded modules in configuration order.
func (a *App) ModuleIDs() []string {
	ids := make([]string, len(a.mods))
	for i, m := range a.mods {
		ids[i] = m.id
	}
	return ids
}

// Module returns a loaded module by ID.
func (a *App) Module(id string) (Module, bool) {
	for _, m := range a.mods {
		if m.id == id {
			return m.value, true
		}
	}
	return nil, false
}

// Bus returns the App's message bus.
func (a *App) Bus() *Bus { return a.bus }

// Methods returns the App's method registry.
func (a *App) Methods() *Methods { return a.methods }

// Handler returns the App's HTTP handler (every module's routes plus /healthz and /metrics).
func (a *App) Handler() http.Handler { return a.mux }

// cleanup calls Cleanup on every provisioned module in reverse order and closes the bus.
func (a *App) cleanup() {
	for i := len(a.mods) - 1; i >= 0; i-- {
		m := a.mods[i]
		if !m.provisioned {
			continue
		}
		if c, ok := m.value.(CleanerUpper); ok {
			if err := c.Cleanup(); err != nil {
				a.log.Error().Err(err).Str("module", m.id).Msg("module cleanup failed")
			}
		}
	}
	a.bus.Close()
}

func (a *App) serveHealth(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	if !a.healthy.Load() {
		w.WriteHeader(http.StatusServiceUnavailable)
		_ = json.NewEncoder(w).Encode(map[string]string{"status": "starting"})
		return
	}
	if a.db != nil {
		if h := a.db.Health(); !h.OK {
			w.WriteHeader(http.StatusServiceUnavailable)
			_ = json.NewEncoder(w).Encode(map[string]any{
				"status": "failing",
				"reason": "the database cannot commit: " + h.Reason,
				"since":  h.Since.Format(time.RFC3339Nano),
			})
			return
		}
	}
	_ = json.NewEncoder(w).Encode(map[string]any{
		"status":  "ok",
		"uptime":  int64(time.Since(a.started).Seconds()),
		"modules": a.ModuleIDs(),
	})
}

// Run runs every module's Run until ctx is cancelled or one of them fails, then cleans every
// module up in reverse order. Cancelling ctx is how the websocket module learns to close its
// connections with 1001 after flushing their queues. Run may be called once.
func (a *App) Run(ctx context.Context) error {
	g, gctx := errgroup.WithContext(ctx)
	for _, m := range a.mods {
		if r, ok := m.value.(Runner); ok {
			g.Go(func() error {
				if err := r.Run(gctx); err != nil && !errors.Is(err, context.Canceled) {
					return fmt.Errorf("module %q: run: %w", m.id, err)
				}
				return nil
			})
		}
	}
	a.healthy.Store(true)
	<-gctx.Done()
	a.healthy.Store(false)
	err := g.Wait()
	a.cleanup()
	return err
}
