// Package wstest is a real Leosac-dialect websocket client for tests, built on the
// coder/websocket dialer. A Client matches replies to requests by uuid and keeps server pushes
// (session_closed, event, lagged) in arrival order for the test to inspect.
package wstest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/google/uuid"
)

// Reply is a server frame as received.
type Reply struct {
	UUID         string          `json:"uuid"`
	Type         string          `json:"type"`
	StatusCode   int             `json:"status_code"`
	StatusString string          `json:"status_string"`
	Content      json.RawMessage `json:"content"`
}

// Decode unmarshals the reply's content into v, failing the test on error.
func (r Reply) Decode(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.Content, v); err != nil {
		t.Fatalf("decode content of %s %q: %v", r.Type, r.Content, err)
	}
}

// Client is one websocket connection.
type Client struct {
	t    testing.TB
	Conn *websocket.Conn

	mu      sync.Mutex
	pending map[string]chan Reply
	pushes  []Reply
	pushed  chan struct{} // signalled on each push
	closed  chan struct{}
	err     error // why the read loop ended
}

// Dial connects to url (ws://…/websocket) and closes the connection at the end of the test.
func Dial(t testing.TB, url string) *Client {
	t.Helper()
	c, err := DialErr(t, url, nil)
	if err != nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	return c
}

// DialErr connects with optional headers and returns the error instead of failing.
func DialErr(t testing.TB, url string, header http.Header) (*Client, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPHeader: header})
	if err != nil {
		return nil, err
	}
	conn.SetReadLimit(16 << 20)
	c := &Client{t: t, Conn: conn, pending: map[string]chan Reply{}, pushed: make(chan struct{}, 1), closed: make(chan struct{})}
	go c.readLoop()
	t.Cleanup(func() { _ = conn.CloseNow(); <-c.closed })
	return c, nil
}

func (c *Client) readLoop() {
	defer close(c.closed)
	for {
		_, b, err := c.Conn.Read(context.Background())
		if err != nil {
			c.mu.Lock()
			c.err = err
			c.mu.Unlock()
			return
		}
		var r Reply
		if err := json.Unmarshal(b, &r); err != nil {
			c.mu.Lock()
			c.err = fmt.Errorf("server sent non-JSON frame %q: %w", b, err)
			c.mu.Unlock()
			return
		}
		c.mu.Lock()
		if ch, ok := c.pending[r.UUID]; ok {
			delete(c.pending, r.UUID)
			c.mu.Unlock()
			ch <- r
			continue
		}
		c.pushes = append(c.pushes, r)
		c.mu.Unlock()
		select {
		case c.pushed <- struct{}{}:
		default:
		}
	}
}

// Call sends a request with a fresh uuid and waits (10 s) for its reply.
func (c *Client) Call(typ string, content any) Reply {
	c.t.Helper()
	r, err := c.CallErr(typ, content)
	if err != nil {
		c.t.Fatalf("%s: %v", typ, err)
	}
	return r
}

// CallErr is Call returning the error.
func (c *Client) CallErr(typ string, content any) (Reply, error) {
	id := uuid.NewString()
	b, err := json.Marshal(map[string]any{"uuid": id, "type": typ, "content": content})
	if err != nil {
		return Reply{}, err
	}
	return c.SendRaw(id, b)
}

// SendRaw sends a frame as is and, when id is not empty, waits for the reply carrying that
// uuid. With an empty id, it waits for the next reply that has an empty uuid.
func (c *Client) SendRaw(id string, frame []byte) (Reply, error) {
	ch := make(chan Reply, 1)
	c.mu.Lock()
	c.pending[id] = ch
	c.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Conn.Write(ctx, websocket.MessageText, frame); err != nil {
		return Reply{}, fmt.Errorf("write: %w", err)
	}
	select {
	case r := <-ch:
		return r, nil
	case <-c.closed:
		return Reply{}, fmt.Errorf("connection closed: %w", c.Err())
	case <-ctx.Done():
		return Reply{}, errors.New("no reply within 10s")
	}
}

// Login calls create_auth_token and fails the test unless it succeeds; it returns the token.
func (c *Client) Login(username, password string) string {
	c.t.Helper()
	r := c.Call("create_auth_token", map[string]string{"username": username, "password": password})
	var res struct {
		Status int    `json:"status"`
		Token  string `json:"token"`
	}
	r.Decode(c.t, &res)
	if r.StatusCode != 0 || res.Status != 0 || res.Token == "" {
		c.t.Fatalf("login %s: status_code %d %q content %s", username, r.StatusCode, r.StatusString, r.Content)
	}
	return res.Token
}

// UseGatehouseTypes opts the connection into gatehouse's own types (session.set_features
// {"types": "gatehouse"}, as the dashboard does) and fails the test unless the server agrees.
// Without it the connection is a Leosac client: only Leosac's types are sent to it.
func (c *Client) UseGatehouseTypes() {
	c.t.Helper()
	r := c.Call("session.set_features", map[string]string{"types": "gatehouse"})
	if r.StatusCode != 0 || !strings.Contains(string(r.Content), `"gatehouse"`) {
		c.t.Fatalf("session.set_features: status_code %d %q content %s", r.StatusCode, r.StatusString, r.Content)
	}
}

// ExpectPush waits for the next push of the given type (others are kept) and returns it.
func (c *Client) ExpectPush(typ string, timeout time.Duration) Reply {
	c.t.Helper()
	deadline := time.After(timeout)
	for {
		c.mu.Lock()
		for i, p := range c.pushes {
			if p.Type == typ {
				c.pushes = append(c.pushes[:i], c.pushes[i+1:]...)
				c.mu.Unlock()
				return p
			}
		}
		c.mu.Unlock()
		select {
		case <-c.pushed:
		case <-c.closed:
			c.t.Fatalf("connection closed while waiting for push %q: %v", typ, c.Err())
		case <-deadline:
			c.t.Fatalf("no %q push within %v", typ, timeout)
		}
	}
}

// Pushes returns the pushes received and not yet taken.
func (c *Client) Pushes() []Reply {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Reply(nil), c.pushes...)
}

// WaitClosed waits until the server closes the connection and returns the close status.
func (c *Client) WaitClosed(timeout time.Duration) websocket.StatusCode {
	c.t.Helper()
	select {
	case <-c.closed:
		return websocket.CloseStatus(c.Err())
	case <-time.After(timeout):
		c.t.Fatalf("connection not closed within %v", timeout)
		return -1
	}
}

// Err returns why the connection's read loop ended (nil while open).
func (c *Client) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}
