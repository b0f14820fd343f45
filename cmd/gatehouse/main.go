// Command gatehouse is the access-control event server.
//
//	gatehouse [serve] [flags]       run the server (the default command)
//	gatehouse version               print the version
//	gatehouse check-config [flags]  validate the configuration and exit
//	gatehouse user passwd NAME      set a user's password offline (revokes their tokens)
//	gatehouse backup FILE [flags]   write a consistent snapshot of the live database
//
// Every flag except --user and --foreground can also be set in the config file (--config) and
// through GATEHOUSE_* variables; flags win over the environment, which wins over the file.
//
// The xivo-auth/wazo-auth daemon flags are accepted as aliases so existing service scripts
// work: -c/--config-file (= --config), -d/--debug (= --log-level debug), -l (= --log-level,
// which also takes critical and warning), -f/--foreground (no effect: gatehouse never
// daemonizes) and -u/--user USER (run as USER; see dropPrivileges).
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/term"

	"gatehouse/core"
	"gatehouse/db"
	"gatehouse/modules/all"
	"gatehouse/modules/auth"
	"gatehouse/modules/auth/password"
	"gatehouse/modules/token"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr, os.Getenv)
	stop()
	os.Exit(code)
}

const usage = `usage:
  gatehouse [serve] [flags]        run the server (default)
  gatehouse version                print the version
  gatehouse check-config [flags]   validate the configuration
  gatehouse user passwd NAME [--generate] [flags]
                                   set a user's password offline; reads it from the
                                   terminal (twice) or the first line of stdin
  gatehouse backup FILE [flags]    write a consistent snapshot of the database to FILE

flags (xivo-auth aliases: -c/--config-file, -d/--debug, -l, -f/--foreground, -u/--user):
`

// run is main without the process: it returns the exit code (0 ok, 1 failure, 2 usage).
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, getenv func(string) string) int {
	cmd := "serve"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, args = args[0], args[1:]
	}
	var err error
	switch cmd {
	case "serve":
		err = serve(ctx, args, stderr, getenv)
	case "version":
		fmt.Fprintf(stdout, "gatehouse %s (%s %s/%s)\n", core.Version, runtime.Version(), runtime.GOOS, runtime.GOARCH)
		return 0
	case "check-config":
		err = checkConfig(args, stdout, stderr, getenv)
	case "user":
		if len(args) < 2 || args[0] != "passwd" {
			fmt.Fprint(stderr, usage)
			return 2
		}
		err = userPasswd(ctx, args[1], args[2:], stdin, stdout, stderr, getenv)
	case "backup":
		if len(args) < 1 || strings.HasPrefix(args[0], "-") {
			fmt.Fprint(stderr, usage)
			return 2
		}
		err = backup(ctx, args[0], args[1:], stdout, stderr, getenv)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		f := newFlags(stdout)
		f.fs.PrintDefaults()
		return 0
	default:
		fmt.Fprintf(stderr, "gatehouse: unknown command %q\n%s", cmd, usage)
		return 2
	}
	var ue usageError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "gatehouse: %v\n", err)
		return 2
	default:
		fmt.Fprintf(stderr, "gatehouse: %v\n", err)
		return 1
	}
}

type usageError struct{ error }

// flags are the flags shared by the commands that read the configuration.
type flags struct {
	fs                                                 *flag.FlagSet
	config, data, listen, tlsCert, tlsKey, level, form string
	selfSigned, demo, foreground, levelSet             bool
	unix, user                                         string
}

// logLevels maps the accepted --log-level names, zerolog's and xivo-auth's, to zerolog's.
var logLevels = map[string]string{
	"debug": "debug", "info": "info", "warn": "warn", "warning": "warn", "error": "error", "critical": "error",
}

// setLevel is the --log-level/-l setter: it accepts the names of logLevels only.
func (f *flags) setLevel(v string) error {
	lvl, ok := logLevels[strings.ToLower(v)]
	if !ok {
		return fmt.Errorf("unknown log level %q: want debug, info, warn (warning), error or critical", v)
	}
	f.level, f.levelSet = lvl, true
	return nil
}

func newFlags(out io.Writer) *flags {
	f := &flags{fs: flag.NewFlagSet("gatehouse", flag.ContinueOnError)}
	f.fs.SetOutput(out)
	f.fs.StringVar(&f.config, "config", "", "JSON configuration file (env GATEHOUSE_CONFIG)")
	f.fs.StringVar(&f.config, "config-file", "", "alias of --config (xivo-auth)")
	f.fs.StringVar(&f.config, "c", "", "alias of --config (xivo-auth)")
	f.fs.StringVar(&f.data, "data", "", "data directory (default ./gatehouse-data)")
	f.fs.StringVar(&f.listen, "listen", "", "listen address (default 127.0.0.1:8080)")
	f.fs.StringVar(&f.unix, "unix", "", "also serve on this Unix socket (mode 0660; sysadm peer-credential login)")
	f.fs.StringVar(&f.tlsCert, "tls-cert", "", "TLS certificate file (PEM)")
	f.fs.StringVar(&f.tlsKey, "tls-key", "", "TLS key file (PEM)")
	f.fs.BoolVar(&f.selfSigned, "tls-self-signed", false, "serve TLS with a self-signed certificate kept in the data directory")
	f.fs.Func("log-level", "log level: debug, info, warn, error; also the xivo-auth names critical (= error) and warning (= warn) (default info)", f.setLevel)
	f.fs.Func("l", "alias of --log-level (xivo-auth)", f.setLevel)
	debug := func(v string) error {
		on, err := strconv.ParseBool(v)
		if err != nil {
			return err
		}
		if on {
			f.level, f.levelSet = "debug", true
		}
		return nil
	}
	f.fs.BoolFunc("debug", "alias of --log-level debug (xivo-auth)", debug)
	f.fs.BoolFunc("d", "alias of --log-level debug (xivo-auth)", debug)
	f.fs.BoolVar(&f.foreground, "foreground", false, "accepted for xivo-auth scripts; gatehouse always runs in the foreground (let the service manager supervise it)")
	f.fs.BoolVar(&f.foreground, "f", false, "alias of --foreground (xivo-auth)")
	f.fs.StringVar(&f.user, "user", "", "run as this user: when started as root, switch to its uid, gid and groups once the listeners are bound (xivo-auth)")
	f.fs.StringVar(&f.user, "u", "", "alias of --user (xivo-auth)")
	f.fs.StringVar(&f.form, "log-format", "", "log format: json or console (default json)")
	f.fs.BoolVar(&f.demo, "demo", false, "seed a demo site and run simulated traffic")
	return f
}

// loadConfig parses flags and returns the configuration: file, then environment, then flags.
// It refuses --user, which only serve and check-config honour.
func loadConfig(args []string, stderr io.Writer, getenv func(string) string) (core.Config, []string, error) {
	cfg, f, err := loadConfigFlags(args, stderr, getenv)
	if err != nil {
		return cfg, nil, err
	}
	if f.user != "" {
		return cfg, nil, usageError{fmt.Errorf("--user applies to serve and check-config only; run this command as %s (e.g. sudo -u %s gatehouse ...)", f.user, f.user)}
	}
	return cfg, f.fs.Args(), nil
}

// loadConfigFlags is loadConfig returning the parsed flags too (for --user and the arguments).
func loadConfigFlags(args []string, stderr io.Writer, getenv func(string) string) (core.Config, *flags, error) {
	f := newFlags(stderr)
	if err := f.fs.Parse(args); err != nil {
		return core.Config{}, nil, usageError{err}
	}
	path := f.config
	if path == "" {
		path = getenv(core.EnvPrefix + "CONFIG")
	}
	var cfg core.Config
	if path != "" {
		var err error
		if cfg, err = core.LoadConfigFile(path); err != nil {
			return cfg, nil, err
		}
	}
	if err := cfg.ApplyEnv(getenv); err != nil {
		return cfg, nil, err
	}
	f.fs.Visit(func(fl *flag.Flag) {
		switch fl.Name {
		case "data":
			cfg.Data = f.data
		case "listen":
			cfg.Listen = f.listen
		case "unix":
			cfg.Unix = f.unix
		case "tls-cert":
			cfg.TLSCert = f.tlsCert
		case "tls-key":
			cfg.TLSKey = f.tlsKey
		case "tls-self-signed":
			cfg.TLSSelfSigned = f.selfSigned
		case "log-level", "l", "debug", "d":
			if f.levelSet {
				cfg.LogLevel = f.level
			}
		case "log-format":
			cfg.LogFormat = f.form
		case "demo":
			cfg.Demo = f.demo
		}
	})
	if len(cfg.Modules) == 0 {
		cfg.Modules = all.DefaultModules()
	}
	if lvl, ok := logLevels[strings.ToLower(cfg.LogLevel)]; ok {
		cfg.LogLevel = lvl // xivo-auth names from the file or the environment too
	}
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return cfg, nil, err
	}
	return cfg, f, nil
}

// newLogger builds the root logger from the configuration: JSON or console lines to w, and
// JSON lines to ring (for get_logs) when ring is not nil.
func newLogger(cfg core.Config, w io.Writer, ring *core.LogRing) (zerolog.Logger, error) {
	lvl, err := zerolog.ParseLevel(cfg.LogLevel)
	if err != nil {
		return zerolog.Nop(), fmt.Errorf("log level %q: %w", cfg.LogLevel, err)
	}
	if cfg.LogFormat == "console" {
		w = zerolog.ConsoleWriter{Out: w, TimeFormat: time.RFC3339}
	}
	if ring != nil {
		w = io.MultiWriter(w, ring)
	}
	return zerolog.New(w).Level(lvl).With().Timestamp().Logger(), nil
}

func serve(ctx context.Context, args []string, stderr io.Writer, getenv func(string) string) error {
	cfg, f, err := loadConfigFlags(args, stderr, getenv)
	if err != nil {
		return err
	}
	if rest := f.fs.Args(); len(rest) > 0 {
		return usageError{fmt.Errorf("unexpected arguments %q", rest)}
	}
	ring := core.NewLogRing(2000)
	log, err := newLogger(cfg, stderr, ring)
	if err != nil {
		return err
	}
	opts := core.ServerOptions{Config: cfg, Registry: all.Registry(), Log: log, Out: stderr, LogRing: ring}
	if f.user != "" {
		r, err := resolveUser(f.user, os.Getuid())
		if err != nil {
			return err
		}
		if r != nil {
			opts.AfterListen = func() error {
				if err := dropPrivileges(r, cfg); err != nil {
					return err
				}
				log.Info().Str("user", r.name).Int("uid", r.uid).Int("gid", r.gid).Ints("groups", r.groups).Msg("privileges dropped")
				return nil
			}
		}
	}
	srv, err := core.NewServer(ctx, opts)
	if err != nil {
		return err
	}
	return srv.Run(ctx)
}

func checkConfig(args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	cfg, f, err := loadConfigFlags(args, stderr, getenv)
	if err != nil {
		return err
	}
	if _, err := newLogger(cfg, io.Discard, nil); err != nil {
		return err
	}
	runsAs := ""
	if f.user != "" {
		r, err := resolveUser(f.user, os.Getuid())
		if err != nil {
			return err
		}
		if r != nil {
			runsAs = fmt.Sprintf(", runs as %s (uid %d)", r.name, r.uid)
		}
	}
	reg := all.Registry()
	var errs []error
	for _, mc := range cfg.Modules {
		info, ok := reg.Lookup(mc.Module)
		if !ok {
			errs = append(errs, fmt.Errorf("module %q is not built into this binary (known: %v)", mc.Module, reg.IDs()))
			continue
		}
		if len(mc.Config) > 0 {
			if err := core.StrictUnmarshal(mc.Config, info.New()); err != nil {
				errs = append(errs, fmt.Errorf("module %q: %w", mc.Module, err))
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if _, err := core.TLSConfigCheck(cfg); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "configuration is valid: data %s, listen %s, modules %d%s\n", cfg.Data, cfg.Listen, len(cfg.Modules), runsAs)
	return nil
}

// authModuleConfig returns the auth module's configuration from cfg, or its defaults.
func authModuleConfig(cfg core.Config) (*auth.Module, error) {
	m := new(auth.Module)
	for _, mc := range cfg.Modules {
		if mc.Module == auth.ModuleID && len(mc.Config) > 0 {
			if err := core.StrictUnmarshal(mc.Config, m); err != nil {
				return nil, fmt.Errorf("module auth: %w", err)
			}
		}
	}
	if m.MinPasswordLength <= 0 {
		m.MinPasswordLength = 8
	}
	return m, nil
}

func userPasswd(ctx context.Context, name string, args []string, stdin io.Reader, stdout, stderr io.Writer, getenv func(string) string) error {
	fs := newFlags(stderr)
	generate := fs.fs.Bool("generate", false, "generate a random password and print it")
	if err := fs.fs.Parse(args); err != nil {
		return usageError{err}
	}
	// Re-read the shared flags through loadConfig (which knows their precedence).
	cfg, _, err := loadConfig(withoutFlag(args, "generate"), stderr, getenv)
	if err != nil {
		return err
	}
	am, err := authModuleConfig(cfg)
	if err != nil {
		return err
	}
	var pw string
	if *generate {
		if pw, err = password.Generate(20); err != nil {
			return err
		}
	} else if pw, err = readNewPassword(stdin, stderr); err != nil {
		return err
	}
	if len(pw) < am.MinPasswordLength || len(pw) > password.MaxLength {
		return fmt.Errorf("the password must be %d to %d characters long", am.MinPasswordLength, password.MaxLength)
	}
	log := zerolog.New(stderr).Level(zerolog.WarnLevel)
	d, err := db.Open(ctx, cfg.Data, log, db.Options{})
	if err != nil {
		return err
	}
	defer d.Close()
	users := auth.NewUsers(d)
	u, err := users.ByUsername(ctx, name)
	if err != nil {
		return fmt.Errorf("user %q: %w", name, err)
	}
	hash, err := password.NewHasher(am.PasswordHash, 1).Hash(ctx, pw)
	if err != nil {
		return err
	}
	if err := users.SetPasswordHash(ctx, u.ID, hash); err != nil {
		return err
	}
	n, err := token.NewStore(d, nil, log).RevokeUser(ctx, u.ID, "", "Password reset by an operator.")
	if err != nil {
		return err
	}
	if *generate {
		fmt.Fprintf(stdout, "new password of %s: %s\n", u.Username, pw)
	}
	fmt.Fprintf(stdout, "password of %s changed; %d token(s) revoked (restart a running server to drop its cached sessions)\n", u.Username, n)
	return nil
}

// withoutFlag removes -name/--name from args.
func withoutFlag(args []string, name string) []string {
	out := make([]string, 0, len(args))
	for _, a := range args {
		if a == "-"+name || a == "--"+name || strings.HasPrefix(a, "-"+name+"=") || strings.HasPrefix(a, "--"+name+"=") {
			continue
		}
		out = append(out, a)
	}
	return out
}

// readNewPassword reads a password twice from a terminal without echo, or once (the first
// line) from any other stdin.
func readNewPassword(stdin io.Reader, stderr io.Writer) (string, error) {
	if f, ok := stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		fmt.Fprint(stderr, "new password: ")
		a, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(stderr)
		if err != nil {
			return "", err
		}
		fmt.Fprint(stderr, "again: ")
		b, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(stderr)
		if err != nil {
			return "", err
		}
		if string(a) != string(b) {
			return "", errors.New("the passwords differ")
		}
		return string(a), nil
	}
	line, err := bufio.NewReader(stdin).ReadString('\n')
	if err != nil && !(errors.Is(err, io.EOF) && line != "") {
		return "", fmt.Errorf("read password from stdin: %w", err)
	}
	return strings.TrimRight(line, "\r\n"), nil
}

func backup(ctx context.Context, file string, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	cfg, _, err := loadConfig(args, stderr, getenv)
	if err != nil {
		return err
	}
	d, err := db.Open(ctx, cfg.Data, zerolog.New(stderr).Level(zerolog.WarnLevel), db.Options{})
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Backup(ctx, file); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "backup written to %s (it contains password hashes and keys: keep it safe)\n", file)
	return nil
}
