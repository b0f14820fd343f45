package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime/pprof"
	"sync"
	"syscall"
	"time"

	"github.com/coder/websocket"
	"github.com/rs/zerolog"

	"gatehouse/core"
	"gatehouse/modules/all"
)

// The hidden subcommands the tool re-executes itself with.
const (
	cmdServeBaseline  = "serve-baseline"
	cmdServeGatehouse = "serve-gatehouse"
)

// runChild runs a hidden server subcommand if args name one; ok is false otherwise. The server
// prints its address as one line on stdout once it listens, and stops gracefully on SIGTERM,
// SIGINT or, with --stdin-lifeline, when its stdin reaches EOF (the parent died or let go).
func runChild(args []string, stdin io.Reader, stdout, stderr io.Writer) (code int, ok bool) {
	if len(args) == 0 || (args[0] != cmdServeBaseline && args[0] != cmdServeGatehouse) {
		return 0, false
	}
	cmd := args[0]
	fs := flag.NewFlagSet("gatehouse-bench "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:0", "listen address")
	data := fs.String("data", "", "data directory (serve-gatehouse)")
	lifeline := fs.Bool("stdin-lifeline", false, "stop when stdin reaches EOF")
	cpuprofile := fs.String("cpuprofile", "", "write a CPU profile of the server's whole life to this file")
	if err := fs.Parse(args[1:]); err != nil {
		return 2, true
	}
	if cmd == cmdServeGatehouse && *data == "" {
		fmt.Fprintln(stderr, "gatehouse-bench serve-gatehouse: --data is required")
		return 2, true
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *lifeline {
		ctx2, cancel := context.WithCancel(ctx)
		defer cancel()
		ctx = ctx2
		go func() {
			_, _ = io.Copy(io.Discard, stdin)
			cancel()
		}()
	}
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			fmt.Fprintf(stderr, "gatehouse-bench %s: %v\n", cmd, err)
			return 1, true
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintf(stderr, "gatehouse-bench %s: %v\n", cmd, err)
			return 1, true
		}
		defer func() { pprof.StopCPUProfile(); _ = f.Close() }()
	}

	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		fmt.Fprintf(stderr, "gatehouse-bench %s: %v\n", cmd, err)
		return 1, true
	}
	// The parent needs the address at once to start polling /healthz; connections made before
	// the server serves wait in the listen backlog.
	fmt.Fprintln(stdout, ln.Addr().String())
	if cmd == cmdServeBaseline {
		err = serveBaseline(ctx, ln)
	} else {
		err = serveGatehouse(ctx, ln, *data, stderr)
	}
	if err != nil {
		fmt.Fprintf(stderr, "gatehouse-bench %s: %v\n", cmd, err)
		return 1, true
	}
	return 0, true
}

// serveGatehouse runs the real server as cmd/gatehouse does, with every standard module, the
// production defaults, warn-level logs on stderr and the admin password from
// GATEHOUSE_ADMIN_PASSWORD, on the given listener.
func serveGatehouse(ctx context.Context, ln net.Listener, data string, stderr io.Writer) error {
	cfg := core.Config{
		Data:          data,
		Listen:        ln.Addr().String(),
		LogLevel:      "warn",
		AdminPassword: os.Getenv(core.EnvPrefix + "ADMIN_PASSWORD"),
		Modules:       all.DefaultModules(),
	}.WithDefaults()
	log := zerolog.New(stderr).Level(zerolog.WarnLevel).With().Timestamp().Logger()
	srv, err := core.NewServer(ctx, core.ServerOptions{
		Config: cfg, Registry: all.Registry(), Log: log, Out: stderr, Listener: ln,
	})
	if err != nil {
		_ = ln.Close()
		return err
	}
	return srv.Run(ctx)
}

// baselineRequest is the envelope the baseline decodes.
type baselineRequest struct {
	UUID    string          `json:"uuid"`
	Type    string          `json:"type"`
	Content json.RawMessage `json:"content"`
}

// baselineReply is the status-0 reply the baseline answers every request with.
type baselineReply struct {
	UUID         string          `json:"uuid"`
	Type         string          `json:"type"`
	StatusCode   int             `json:"status_code"`
	StatusString string          `json:"status_string"`
	Content      json.RawMessage `json:"content"`
}

var emptyObject = json.RawMessage(`{}`)

// Limits of the baseline, the same as gatehouse's defaults.
const (
	baselineQueue        = 256
	baselineReadLimit    = 64 << 10
	baselineWriteTimeout = 5 * time.Second
)

// serveBaseline is a sensible minimal server of the Leosac envelope: one reader per
// connection decoding {"uuid","type","content"} and answering status 0 through a bounded
// queue drained by one writer, each write under a timeout. It serves /websocket and /healthz,
// and HEAD /0.1/token/{token} with a bare 204 (the reference of gatehouse's token check, on
// the same route pattern), until ctx is done, then closes its connections and returns when
// they have ended.
func serveBaseline(ctx context.Context, ln net.Listener) error {
	connCtx, cancelConns := context.WithCancel(context.Background())
	defer cancelConns()
	var wg sync.WaitGroup
	h := &hub{subs: map[*baselineSub]struct{}{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"status":"ok"}`)
	})
	mux.HandleFunc("HEAD /0.1/token/{token}", func(w http.ResponseWriter, r *http.Request) {
		_ = r.PathValue("token")
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("/websocket", func(w http.ResponseWriter, r *http.Request) {
		wg.Add(1)
		defer wg.Done()
		ws, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer ws.CloseNow()
		ws.SetReadLimit(baselineReadLimit)
		baselineConn(connCtx, ws, h)
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	var err error
	select {
	case <-ctx.Done():
	case err = <-served:
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	_ = srv.Shutdown(sctx)
	cancel()
	cancelConns()
	wg.Wait()
	if err == nil {
		err = <-served
	}
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

// The broadcast mode of the baseline (the fan-out measurement's reference): a connection
// that sends baselineSubscribe is answered and then gets every broadcast; a connection that
// sends baselineBroadcast with some content is answered and every subscriber is pushed
// {"uuid","type":"event","status_code":0,"status_string":"","content":<that content>}. A
// subscriber whose queue is full is closed with 4001, as gatehouse closes a lagging client.
const (
	baselineSubscribe  = "bench.subscribe"
	baselineBroadcast  = "bench.broadcast"
	baselineEventQueue = 4096 // gatehouse's default event_queue
)

// hub is the baseline's set of subscribers.
type hub struct {
	mu   sync.Mutex
	subs map[*baselineSub]struct{}
}

type baselineSub struct {
	out chan []byte
	lag chan struct{} // closed when its queue overflowed
}

func (h *hub) broadcast(content json.RawMessage) {
	b, err := json.Marshal(baselineReply{Type: "event", Content: content})
	if err != nil {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for s := range h.subs {
		select {
		case s.out <- b:
		default:
			delete(h.subs, s)
			close(s.lag)
		}
	}
}

func baselineConn(ctx context.Context, ws *websocket.Conn, h *hub) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	out := make(chan []byte, baselineQueue+baselineEventQueue)
	me := &baselineSub{out: out, lag: make(chan struct{})}
	written := make(chan struct{})
	go func() {
		defer close(written)
		for {
			select {
			case b, ok := <-out:
				if !ok {
					return
				}
				wctx, wcancel := context.WithTimeout(ctx, baselineWriteTimeout)
				err := ws.Write(wctx, websocket.MessageText, b)
				wcancel()
				if err != nil {
					cancel()
					return
				}
			case <-me.lag:
				_ = ws.Close(4001, "lagged")
				cancel()
				return
			}
		}
	}()
	defer func() {
		h.mu.Lock()
		delete(h.subs, me)
		h.mu.Unlock()
		close(out)
		<-written
	}()
	for {
		_, frame, err := ws.Read(ctx)
		if err != nil {
			return
		}
		var req baselineRequest
		rep := baselineReply{Content: emptyObject}
		if err := json.Unmarshal(frame, &req); err != nil {
			rep.StatusCode, rep.StatusString = int(core.Malformed), "Malformed message."
		}
		rep.UUID, rep.Type = req.UUID, req.Type
		switch req.Type {
		case baselineSubscribe:
			h.mu.Lock()
			h.subs[me] = struct{}{}
			h.mu.Unlock()
		case baselineBroadcast:
			h.broadcast(req.Content)
		}
		b, err := json.Marshal(rep)
		if err != nil {
			return
		}
		select {
		case out <- b:
		case <-ctx.Done():
			return
		}
	}
}
