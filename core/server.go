package core

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"gatehouse/db"
)

// ServerOptions configure a Server. Config, Registry and Log are required.
type ServerOptions struct {
	Config   Config
	Registry *Registry
	Log      zerolog.Logger
	// Out receives one-time operator messages (the generated admin password); nil = io.Discard.
	Out io.Writer
	// Listener, if set, is used instead of listening on Config.Listen (tests pass 127.0.0.1:0).
	Listener net.Listener
	// DBOptions tune the database handles.
	DBOptions db.Options
	// LogRing, if set, is the ring the root logger also writes to; get_logs reads it.
	LogRing *LogRing
	// AfterListen, if set, runs once the TCP listener and the optional Unix socket are bound
	// and before the data directory is touched (database, self-signed certificate): the
	// command uses it to drop root privileges (--user). An error aborts NewServer.
	AfterListen func() error
}

// Server is one gatehouse process: the database, the HTTP listener (plain or TLS; with the
// optional Unix socket and sysadm listener), and the App of modules behind it. A restart (Leosac's restart call) replaces the App in-process while
// the listener and database stay open.
type Server struct {
	opts    ServerOptions
	cfg     Config
	log     zerolog.Logger
	db      *db.DB
	lock    *db.DirLock // held on the data directory from NewServer until Run returns
	ln      net.Listener
	srv     *http.Server
	unixLn  net.Listener // the --unix listener and its server; nil when not configured
	unixSrv *http.Server
	// sysadmLn and sysadmSrv are the --sysadm-listen listener and its server; nil when off.
	sysadmLn  net.Listener
	sysadmSrv *http.Server
	scheme    string
	current   atomic.Pointer[App]
	restart   chan struct{}
}

// NewServer binds the listener (and the optional Unix socket and sysadm listener), runs AfterListen, opens the
// database (applying migrations) and builds the App of configured modules. Nothing is served
// until Run.
func NewServer(ctx context.Context, opts ServerOptions) (_ *Server, err error) {
	cfg := opts.Config.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	// Every module checks its configuration before anything is created (listener, data
	// directory, database): a rejected configuration leaves nothing behind.
	if _, err := CheckModules(cfg, opts.Registry); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	if opts.Out == nil {
		opts.Out = io.Discard
	}
	s := &Server{opts: opts, cfg: cfg, log: opts.Log, restart: make(chan struct{}, 1), scheme: "http"}
	// On failure, release what was acquired so far (listeners, database, modules).
	var app *App
	defer func() {
		if err == nil {
			return
		}
		if app != nil {
			app.cleanup()
		}
		if s.db != nil {
			_ = s.db.Close()
		}
		if s.lock != nil {
			_ = s.lock.Unlock()
		}
		if s.unixLn != nil {
			_ = s.unixLn.Close()
		}
		if s.sysadmLn != nil {
			_ = s.sysadmLn.Close()
		}
		if s.ln != nil && opts.Listener == nil {
			_ = s.ln.Close()
		}
	}()

	// Listeners first: binding a privileged port or a socket in a root-owned directory may need
	// privileges that AfterListen then drops.
	s.ln = opts.Listener
	if s.ln == nil {
		if s.ln, err = net.Listen("tcp", cfg.Listen); err != nil {
			return nil, fmt.Errorf("listen on %s: %w", cfg.Listen, err)
		}
	}
	if cfg.Unix != "" {
		ul, err := listenUnix(cfg.Unix)
		if err != nil {
			return nil, err
		}
		s.unixLn = ul
	}
	if cfg.SysadmListen != "" {
		if s.sysadmLn, err = net.Listen("tcp", cfg.SysadmListen); err != nil {
			return nil, fmt.Errorf("sysadm_listen on %s: %w", cfg.SysadmListen, err)
		}
	}
	if opts.AfterListen != nil {
		if err := opts.AfterListen(); err != nil {
			return nil, err
		}
	}

	// The data directory is locked while the server runs: offline commands that write refuse
	// to run behind its back, and a second server on the same data refuses to start.
	dbLog := opts.Log.With().Str("module", "db").Logger()
	if err := db.PrepareDir(cfg.Data, dbLog); err != nil {
		return nil, err
	}
	if s.lock, err = db.LockDir(cfg.Data); err != nil {
		return nil, err
	}
	if s.db, err = db.Open(ctx, cfg.Data, dbLog, opts.DBOptions); err != nil {
		return nil, err
	}
	if app, err = s.newApp(); err != nil {
		return nil, err
	}
	if s.sysadmLn != nil && !app.sysadmRoutes {
		return nil, errors.New("config: sysadm_listen is set but no module serves it: enable the sysadm module or drop sysadm_listen")
	}
	s.current.Store(app)

	tlsCfg, err := TLSConfig(cfg, opts.Log)
	if err != nil {
		return nil, err
	}
	if tlsCfg != nil {
		s.scheme = "https"
	} else if !isLoopback(s.ln.Addr()) {
		opts.Log.Warn().Str("addr", s.ln.Addr().String()).
			Msg("listening on a non-loopback address without TLS: passwords and tokens cross the network in clear; use --tls-cert/--tls-key or --tls-self-signed")
	}
	// ReadTimeout bounds headers and body together: a body trickled in slower is cut off.
	// net/http clears the connection's deadlines when a handler hijacks it, so an upgraded
	// websocket is not subject to it (its own pings and idle timeout apply).
	httpLog := opts.Log.With().Str("module", "http").Logger()
	s.srv = &http.Server{
		Handler:           newHostGuard(cfg, http.HandlerFunc(s.serveHTTP), httpLog),
		TLSConfig:         tlsCfg,
		ReadHeaderTimeout: HeaderTimeout,
		ReadTimeout:       cfg.bodyTimeout(),
		MaxHeaderBytes:    MaxHeaderBytes,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          newStdLogger(httpLog),
	}
	if s.unixLn != nil {
		// Its own server: one http.Server serving TLS and plain listeners at once mutates its
		// TLS configuration under the other. Requests carry the peer's SO_PEERCRED (PeerCred).
		// No Host check: browsers cannot reach a Unix socket, so DNS rebinding cannot either.
		s.unixSrv = &http.Server{
			Handler:           http.HandlerFunc(s.serveHTTP),
			ConnContext:       peerCredContext,
			ReadHeaderTimeout: s.srv.ReadHeaderTimeout,
			ReadTimeout:       s.srv.ReadTimeout,
			MaxHeaderBytes:    s.srv.MaxHeaderBytes,
			IdleTimeout:       s.srv.IdleTimeout,
			ErrorLog:          s.srv.ErrorLog,
		}
	}
	if s.sysadmLn != nil {
		// Its own server (and TLS configuration), with the same guard and limits as the main one.
		s.sysadmSrv = &http.Server{
			Handler:           newHostGuard(cfg, http.HandlerFunc(s.serveSysadm), httpLog),
			ReadHeaderTimeout: s.srv.ReadHeaderTimeout,
			ReadTimeout:       s.srv.ReadTimeout,
			MaxHeaderBytes:    s.srv.MaxHeaderBytes,
			IdleTimeout:       s.srv.IdleTimeout,
			ErrorLog:          s.srv.ErrorLog,
		}
		if tlsCfg != nil {
			s.sysadmSrv.TLSConfig = tlsCfg.Clone()
		} else if !isLoopback(s.sysadmLn.Addr()) {
			opts.Log.Warn().Str("addr", s.sysadmLn.Addr().String()).
				Msg("sysadm listener on a non-loopback address without TLS: passwords and tokens cross the network in clear")
		}
	}
	return s, nil
}

func (s *Server) newApp() (*App, error) {
	return NewApp(s.cfg, s.opts.Registry, Deps{
		Log: s.log, DB: s.db, Out: s.opts.Out, LogRing: s.opts.LogRing,
		Restart: func() {
			select {
			case s.restart <- struct{}{}:
			default:
			}
		},
	})
}

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	app := s.current.Load()
	if app == nil {
		http.Error(w, "restarting", http.StatusServiceUnavailable)
		return
	}
	if r.URL.Path == "/" && app.sysadmRoutes && isWebsocketUpgrade(r) {
		// sysadm clients open their websocket at the root path; browsers GET the dashboard.
		app.sysadmMux.ServeHTTP(w, r)
		return
	}
	app.mux.ServeHTTP(w, r)
}

// serveSysadm is the handler of the sysadm listener: only the routes of HandleSysadm.
func (s *Server) serveSysadm(w http.ResponseWriter, r *http.Request) {
	app := s.current.Load()
	if app == nil {
		http.Error(w, "restarting", http.StatusServiceUnavailable)
		return
	}
	app.sysadmMux.ServeHTTP(w, r)
}

// isWebsocketUpgrade reports whether r asks for a websocket (RFC 6455 §4.1: an "Upgrade:
// websocket" header and "upgrade" among the Connection tokens).
func isWebsocketUpgrade(r *http.Request) bool {
	if !strings.EqualFold(strings.TrimSpace(r.Header.Get("Upgrade")), "websocket") {
		return false
	}
	for _, v := range r.Header.Values("Connection") {
		for _, tok := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(tok), "upgrade") {
				return true
			}
		}
	}
	return false
}

// Addr returns the address the server listens on.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// URL returns the server's base URL, e.g. "http://127.0.0.1:8080".
func (s *Server) URL() string { return s.scheme + "://" + s.Addr() }

// SysadmURL returns the base URL of the sysadm listener (its websocket is at "/", with the
// scheme ws or wss instead), or "" when Config.SysadmListen is not set.
func (s *Server) SysadmURL() string {
	if s.sysadmLn == nil {
		return ""
	}
	return s.scheme + "://" + s.sysadmLn.Addr().String()
}

// App returns the App currently serving (it changes on restart).
func (s *Server) App() *App { return s.current.Load() }

// DB returns the database.
func (s *Server) DB() *db.DB { return s.db }

// Run serves until ctx is cancelled or a module fails. On return the listener is closed, every
// websocket has been closed with 1001 after its queued replies were written, every module has
// been cleaned up, the database is closed and the data directory unlocked.
func (s *Server) Run(ctx context.Context) error {
	defer func() { _ = s.lock.Unlock() }()
	// A failing database is probed until it commits again (db.WatchHealth), for /healthz.
	healthCtx, stopHealth := context.WithCancel(context.Background())
	healthDone := make(chan struct{})
	go func() {
		defer close(healthDone)
		s.db.WatchHealth(healthCtx)
	}()
	defer func() { stopHealth(); <-healthDone }()
	serveErr := make(chan error, 1)
	go func() {
		var err error
		if s.srv.TLSConfig != nil {
			err = s.srv.ServeTLS(s.ln, "", "")
		} else {
			err = s.srv.Serve(s.ln)
		}
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
		serveErr <- err
	}()
	// The Unix socket serves the same handler, in clear (the kernel, not TLS, vouches for the
	// peer); shutting its server down closes it, which removes the socket file.
	unixDone := make(chan struct{})
	go func() {
		defer close(unixDone)
		if s.unixSrv == nil {
			return
		}
		if err := s.unixSrv.Serve(s.unixLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error().Err(err).Str("unix", s.cfg.Unix).Msg("unix socket listener failed")
		}
	}()
	sysadmDone := make(chan struct{})
	go func() {
		defer close(sysadmDone)
		if s.sysadmSrv == nil {
			return
		}
		var err error
		if s.sysadmSrv.TLSConfig != nil {
			err = s.sysadmSrv.ServeTLS(s.sysadmLn, "", "")
		} else {
			err = s.sysadmSrv.Serve(s.sysadmLn)
		}
		if err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error().Err(err).Str("sysadm_listen", s.cfg.SysadmListen).Msg("sysadm listener failed")
		}
	}()
	// Healthy before the ready line: whoever reads that line may rely on /healthz at once.
	s.current.Load().healthy.Store(true)
	s.log.Info().Str("url", s.URL()).Str("unix", s.cfg.Unix).Str("sysadm_url", s.SysadmURL()).Strs("modules", s.current.Load().ModuleIDs()).Msg("gatehouse ready")

	var runErr error
	for {
		app := s.current.Load()
		app.healthy.Store(true)
		appCtx, cancelApp := context.WithCancel(context.Background())
		appDone := make(chan error, 1)
		go func() { appDone <- app.Run(appCtx) }()

		restart := false
		select {
		case <-ctx.Done():
		case <-s.restart:
			restart = true
		case err := <-appDone:
			runErr = err
			appDone <- err
		case err := <-serveErr:
			runErr = fmt.Errorf("http server: %w", err)
			serveErr <- err
		}
		if !restart {
			shutdownCtx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout.D())
			if err := s.srv.Shutdown(shutdownCtx); err != nil {
				s.log.Warn().Err(err).Msg("http shutdown incomplete")
			}
			if s.unixSrv != nil {
				if err := s.unixSrv.Shutdown(shutdownCtx); err != nil {
					s.log.Warn().Err(err).Msg("unix socket shutdown incomplete")
				}
			}
			if s.sysadmSrv != nil {
				if err := s.sysadmSrv.Shutdown(shutdownCtx); err != nil {
					s.log.Warn().Err(err).Msg("sysadm listener shutdown incomplete")
				}
			}
			cancel()
		}
		cancelApp()
		if err := <-appDone; err != nil && runErr == nil {
			runErr = err
		}
		if !restart {
			break
		}
		s.log.Info().Msg("restarting modules")
		s.current.Store(nil)
		next, err := s.newApp()
		if err != nil {
			runErr = fmt.Errorf("restart: %w", err)
			_ = s.srv.Close()
			if s.sysadmSrv != nil {
				_ = s.sysadmSrv.Close()
			}
			break
		}
		s.current.Store(next)
	}
	if err := <-serveErr; err != nil && runErr == nil {
		runErr = fmt.Errorf("http server: %w", err)
	}
	if s.unixSrv != nil {
		_ = s.unixSrv.Close() // already shut down, unless a restart failed
	}
	<-unixDone
	if s.sysadmSrv != nil {
		_ = s.sysadmSrv.Close() // already shut down, unless a restart failed
	}
	<-sysadmDone
	stopHealth()
	<-healthDone
	if err := s.db.Close(); err != nil && runErr == nil {
		runErr = err
	}
	s.log.Info().Msg("gatehouse stopped")
	return runErr
}

func isLoopback(a net.Addr) bool {
	if ta, ok := a.(*net.TCPAddr); ok {
		return ta.IP.IsLoopback()
	}
	return false
}

// TLSConfig returns the TLS configuration the listener serves with, or nil for plain HTTP.
func TLSConfig(cfg Config, log zerolog.Logger) (*tls.Config, error) {
	var cert tls.Certificate
	var err error
	switch {
	case cfg.TLSCert != "":
		cert, err = tls.LoadX509KeyPair(cfg.TLSCert, cfg.TLSKey)
		if err != nil {
			return nil, fmt.Errorf("load TLS certificate: %w", err)
		}
	case cfg.TLSSelfSigned:
		cert, err = SelfSignedCertificate(cfg.Data, cfg.Listen, log)
		if err != nil {
			return nil, err
		}
	default:
		return nil, nil
	}
	return &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}, nil
}

// TLSConfigCheck checks the TLS settings without creating anything: a configured certificate
// and key must load. It reports whether TLS would be served.
func TLSConfigCheck(cfg Config) (bool, error) {
	if cfg.TLSCert != "" {
		if _, err := tls.LoadX509KeyPair(cfg.TLSCert, cfg.TLSKey); err != nil {
			return false, fmt.Errorf("load TLS certificate: %w", err)
		}
		return true, nil
	}
	return cfg.TLSSelfSigned, nil
}
