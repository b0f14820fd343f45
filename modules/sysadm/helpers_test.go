package sysadm_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"go.uber.org/goleak"

	"gatehouse/core"
	"gatehouse/core/coretest"
	"gatehouse/modules/auth"
)

// cheapHashing keeps password hashing fast (logins are what is tested, not argon2).
const cheapHashing = `{"password_hash": {"memory_kib": 64, "iterations": 1, "parallelism": 1}}`

// start starts a real server; sysadmCfg is the sysadm module's configuration ("" = defaults).
func start(t *testing.T, sysadmCfg string, opts ...coretest.Option) *coretest.Server {
	t.Helper()
	all := []coretest.Option{coretest.WithModuleConfig("auth", cheapHashing)}
	if sysadmCfg != "" {
		all = append(all, coretest.WithModuleConfig("sysadm", sysadmCfg))
	}
	return coretest.Start(t, append(all, opts...)...)
}

func wsURL(srv *coretest.Server) string {
	return "ws" + strings.TrimPrefix(srv.HTTPURL, "http") + "/sysadm"
}

// addUser creates a user with a password and rank directly in the store.
func addUser(t *testing.T, srv *coretest.Server, name, password string, rank core.Rank) int64 {
	t.Helper()
	mod, _ := srv.App().Module(auth.ModuleID)
	am := mod.(*auth.Module)
	hash, err := am.Hasher().Hash(context.Background(), password)
	if err != nil {
		t.Fatal(err)
	}
	u := &auth.User{Username: name, PasswordHash: hash, Rank: rank, ValidityEnabled: true}
	if err := am.Users().Create(context.Background(), u); err != nil {
		t.Fatal(err)
	}
	return u.ID
}

// frame is a server frame as received.
type frame struct {
	Namespace string          `json:"namespace"`
	Name      string          `json:"name"`
	ID        string          `json:"id"`
	Args      json.RawMessage `json:"args"`
}

// code returns the numeric code of an error frame (0 for other frames).
func (f frame) code() int {
	if f.Name != "error" {
		return 0
	}
	var a struct {
		Code int `json:"code"`
	}
	_ = json.Unmarshal(f.Args, &a)
	return a.Code
}

func (f frame) decode(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(f.Args, v); err != nil {
		t.Fatalf("decode args of %s/%s %s: %v", f.Namespace, f.Name, f.Args, err)
	}
}

// client is a sysadm websocket client. Frames are read synchronously by the test; pushes met
// while waiting for a reply are kept in order.
type client struct {
	t      *testing.T
	ws     *websocket.Conn
	pushes []frame
	seq    atomic.Int64
	closed error // why reading ended
}

func dial(t *testing.T, url string) *client {
	t.Helper()
	c, err := dialErr(t, url, nil)
	if err != nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	return c
}

// dialUnix connects to the sysadm websocket over a Unix socket.
func dialUnix(t *testing.T, path string) *client {
	t.Helper()
	c, err := dialErr(t, "ws://unix/sysadm", &websocket.DialOptions{HTTPClient: unixClient(path)})
	if err != nil {
		t.Fatalf("dial unix %s: %v", path, err)
	}
	return c
}

func unixClient(path string) *http.Client {
	return &http.Client{Transport: &http.Transport{DisableKeepAlives: true,
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", path)
		}}}
}

func dialErr(t *testing.T, url string, opts *websocket.DialOptions) (*client, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ws, resp, err := websocket.Dial(ctx, url, opts)
	if err != nil {
		return nil, err
	}
	if resp != nil && resp.Body != nil {
		resp.Body.Close()
	}
	ws.SetReadLimit(4 << 20)
	t.Cleanup(func() { _ = ws.CloseNow() })
	return &client{t: t, ws: ws}, nil
}

// sendRaw writes one text frame.
func (c *client) sendRaw(b []byte) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.ws.Write(ctx, websocket.MessageText, b); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// next reads the next frame.
func (c *client) next(timeout time.Duration) (frame, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	_, b, err := c.ws.Read(ctx)
	if err != nil {
		c.closed = err
		return frame{}, err
	}
	var f frame
	if err := json.Unmarshal(b, &f); err != nil {
		return frame{}, fmt.Errorf("frame %q: %w", b, err)
	}
	return f, nil
}

// call sends a request and returns its reply (response or error frame).
func (c *client) call(ns, name string, args any) frame {
	c.t.Helper()
	id := fmt.Sprintf("req-%d", c.seq.Add(1))
	b, err := json.Marshal(map[string]any{"namespace": ns, "name": name, "id": id, "args": args})
	if err != nil {
		c.t.Fatal(err)
	}
	c.sendRaw(b)
	return c.await(id)
}

// await reads until the frame with the given id.
func (c *client) await(id string) frame {
	c.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		f, err := c.next(time.Until(deadline))
		if err != nil {
			c.t.Fatalf("waiting for %s: %v", id, err)
		}
		if f.ID == id && (f.Name == "response" || f.Name == "error") {
			return f
		}
		c.pushes = append(c.pushes, f)
	}
}

// ok calls and fails the test unless the reply is a response.
func (c *client) ok(ns, name string, args any) frame {
	c.t.Helper()
	f := c.call(ns, name, args)
	if f.Name != "response" {
		c.t.Fatalf("%s/%s: %s %s", ns, name, f.Name, f.Args)
	}
	return f
}

// wantCode calls and fails the test unless the reply is an error with that code.
func (c *client) wantCode(ns, name string, args any, code int) frame {
	c.t.Helper()
	f := c.call(ns, name, args)
	if f.code() != code || f.Namespace != ns {
		c.t.Fatalf("%s/%s: got %s/%s %s, want error %d with the namespace echoed", ns, name, f.Namespace, f.Name, f.Args, code)
	}
	return f
}

// login runs rpc/auth and returns the token and the seconds reported.
func (c *client) login(user, password string) (string, int64) {
	c.t.Helper()
	f := c.ok("rpc", "auth", map[string]string{"username": user, "password": password})
	var res []any
	f.decode(c.t, &res)
	if len(res) != 2 {
		c.t.Fatalf("auth reply %s", f.Args)
	}
	tok, _ := res[0].(string)
	secs, _ := res[1].(float64)
	return tok, int64(secs)
}

// push returns the next pushed frame whose name is among names (others are skipped).
func (c *client) push(names ...string) frame {
	c.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		for i, f := range c.pushes {
			for _, n := range names {
				if f.Name == n {
					c.pushes = append(c.pushes[:i], c.pushes[i+1:]...)
					return f
				}
			}
		}
		f, err := c.next(time.Until(deadline))
		if err != nil {
			c.t.Fatalf("no push among %v: %v", names, err)
		}
		c.pushes = append(c.pushes, f)
	}
}

// closedWith reads until the connection ends and returns the close status and reason; frames
// read meanwhile are kept as pushes.
func (c *client) closedWith(timeout time.Duration) (websocket.StatusCode, string) {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		f, err := c.next(time.Until(deadline))
		if err == nil {
			c.pushes = append(c.pushes, f)
			continue
		}
		var ce websocket.CloseError
		if errors.As(err, &ce) {
			return ce.Code, ce.Reason
		}
		if time.Now().Before(deadline) && !errors.Is(err, context.DeadlineExceeded) {
			return -1, err.Error() // the server ended the connection without a close frame
		}
		c.t.Fatalf("connection did not close within %v: %v", timeout, err)
		return 0, ""
	}
}

func contextTimeout() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 5*time.Second)
}

// TestMain fails the package if a goroutine outlives its test server (connections, streams,
// watchers must all end).
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
