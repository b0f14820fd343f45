// Command gatehouse is the access-control event server.
//
//	gatehouse [serve] [flags]         run the server (the default command)
//	gatehouse version                 print the version (also --version)
//	gatehouse check-config [flags]    validate the configuration, print the effective one
//	gatehouse user passwd NAME        set a user's password offline (revokes their tokens)
//	gatehouse backup FILE [flags]     write one archive of the database and the keys
//	gatehouse restore FILE [--force]  check an archive and install it in the data directory
//
// serve holds a lock on the data directory (db.LockFile): the offline commands that write
// (user passwd, restore) refuse to run while a server holds it; backup works either way.
//
// Logs: JSON lines (or console lines, without colours when stderr is not a terminal) with
// millisecond UTC timestamps in "time"; duration fields carry their unit in their name
// ("took_ms"), zerolog's DurationFieldUnit being set to milliseconds once, in main.
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
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
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
	// The one piece of zerolog's global state gatehouse sets: durations are logged as
	// milliseconds (zerolog's default, made explicit), which the "_ms" field names promise.
	zerolog.DurationFieldUnit = time.Millisecond
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr, os.Getenv)
	stop()
	os.Exit(code)
}

const usage = `usage: gatehouse [command] [flags]

commands:
  serve [flags]                    run the server (the default command)
  version                          print the version (also -v, --version)
  check-config [flags]             validate the configuration as serve would and print
                                   the effective one, every default filled in
  user passwd NAME [--generate] [flags]
                                   set a user's password offline (the server must be
                                   stopped); reads it from the terminal (twice) or the
                                   first line of stdin
  backup FILE [flags]              write one archive (mode 0600) of the database and the
                                   keys of the data directory; works while serving
  restore FILE [--force] [flags]   check an archive and install it in the data directory
                                   (the server must be stopped; --force replaces an
                                   existing database and keys)
  help                             print this help (also -h, --help)

flags (xivo-auth aliases: -c/--config-file, -d/--debug, -l, -f/--foreground, -u/--user):
`

// run is main without the process: it returns the exit code (0 ok, 1 failure, 2 usage).
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, getenv func(string) string) int {
	cmd := "serve"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, args = args[0], args[1:]
	} else if len(args) > 0 && slices.Contains([]string{"-h", "-help", "--help", "-v", "-version", "--version"}, args[0]) {
		cmd, args = args[0], args[1:]
	}
	var err error
	switch cmd {
	case "serve":
		err = serve(ctx, args, stderr, getenv)
	case "version", "-v", "-version", "--version":
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
	case "restore":
		if len(args) < 1 || strings.HasPrefix(args[0], "-") {
			fmt.Fprint(stderr, usage)
			return 2
		}
		err = restore(ctx, args[0], args[1:], stdout, stderr, getenv)
	case "help", "-h", "-help", "--help":
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
	unix, user, sysadmListen                           string
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
	f.fs.StringVar(&f.sysadmListen, "sysadm-listen", "", "also serve the sysadm dialect alone on this address, its websocket at / (TrueOS sysadm's port is 12150; default off)")
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
		case "sysadm-listen":
			cfg.SysadmListen = f.sysadmListen
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
	// The file's module sections override the standard list by module ID: a module left out
	// still loads with its defaults, unless it is listed with "disabled": true.
	if err := cfg.Validate(); err != nil { // duplicates and missing IDs, before merging
		return cfg, nil, err
	}
	cfg.Modules = core.MergeModules(all.DefaultModules(), cfg.Modules)
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
		w = zerolog.ConsoleWriter{Out: w, TimeFormat: logTimeFormat, NoColor: !isTerminal(w)}
	}
	if ring != nil {
		w = io.MultiWriter(w, ring)
	}
	return zerolog.New(w).Level(lvl).Hook(timestampHook{}), nil
}

// logTimeFormat is the format of the "time" field of log lines: RFC 3339 in UTC with
// milliseconds.
const logTimeFormat = "2006-01-02T15:04:05.000Z07:00"

// timestampHook adds the "time" field to every record of the logger it is attached to (and of
// the loggers derived from it), in logTimeFormat. It replaces zerolog's Timestamp, whose format
// is the package-global zerolog.TimeFieldFormat.
type timestampHook struct{}

// Run implements zerolog.Hook.
func (timestampHook) Run(e *zerolog.Event, _ zerolog.Level, _ string) {
	e.Str(zerolog.TimestampFieldName, time.Now().UTC().Format(logTimeFormat))
}

// isTerminal reports whether w is a terminal (colours in console logs only then).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
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

// checkConfig runs the checks serve runs before creating anything (configuration, every
// module's configuration with its defaults and its CheckConfig, the log settings, the TLS
// files, --user) and prints the effective configuration, every default filled in, as JSON.
func checkConfig(args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	cfg, f, err := loadConfigFlags(args, stderr, getenv)
	if err != nil {
		return err
	}
	if rest := f.fs.Args(); len(rest) > 0 {
		return usageError{fmt.Errorf("unexpected arguments %q", rest)}
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
	eff, err := core.CheckModules(cfg, all.Registry())
	if err != nil {
		return err
	}
	if _, err := core.TLSConfigCheck(cfg); err != nil {
		return err
	}
	out, err := json.MarshalIndent(eff, "", "  ")
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s\n", out)
	sysadm := ""
	if cfg.SysadmListen != "" {
		sysadm = ", sysadm listen " + cfg.SysadmListen
	}
	fmt.Fprintf(stderr, "configuration is valid: data %s, listen %s%s, modules %d%s\n", cfg.Data, cfg.Listen, sysadm, len(cfg.EnabledModules()), runsAs)
	return nil
}

// authModuleConfig returns the auth module's effective configuration (defaults applied).
func authModuleConfig(cfg core.Config) (*auth.Module, error) {
	v, ok, err := core.ModuleValue(cfg, all.Registry(), auth.ModuleID)
	if err != nil {
		return nil, err
	}
	if !ok {
		m := new(auth.Module)
		m.ApplyDefaults()
		return m, nil
	}
	return v.(*auth.Module), nil
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
	// Refuse before asking for the password when a server runs on the data.
	lock, err := lockOffline(cfg.Data, "change the password through the running server instead: "+
		"password_change over the websocket API, or the dashboard's account page (an offline change would not end the sessions the server holds)")
	if err != nil {
		return err
	}
	defer lock.Unlock()
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
	d, err := db.Open(ctx, cfg.Data, log, db.Options{MustExist: true})
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
	if done, err := auth.PasswordReplaced(ctx, d, cfg.Data, u.ID); err != nil {
		return err
	} else if done {
		fmt.Fprintf(stdout, "the generated initial password is no longer valid: %s deleted\n", filepath.Join(cfg.Data, core.InitialPasswordFile))
	}
	if *generate {
		fmt.Fprintf(stdout, "new password of %s: %s\n", u.Username, pw)
	}
	fmt.Fprintf(stdout, "password of %s changed; %d token(s) revoked\n", u.Username, n)
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
