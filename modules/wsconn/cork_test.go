package wsconn

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"testing"
	"time"
)

// countingConn records the writes that reach the network.
type countingConn struct {
	net.Conn
	mu     sync.Mutex
	writes int
	data   bytes.Buffer
}

func (c *countingConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.writes++
	return c.data.Write(p)
}

func (c *countingConn) SetWriteDeadline(time.Time) error { return nil }

func TestCorkConnBatchesWrites(t *testing.T) {
	under := &countingConn{}
	c := &corkConn{Conn: under}
	c.cork()
	for _, s := range []string{"one", "two", "three"} {
		if _, err := c.Write([]byte(s)); err != nil {
			t.Fatal(err)
		}
	}
	if under.writes != 0 {
		t.Fatalf("%d writes reached the network while corked", under.writes)
	}
	if err := c.uncork(time.Now().Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	if under.writes != 1 || under.data.String() != "onetwothree" {
		t.Fatalf("after uncork: %d writes, %q; want 1 write of the three frames in order", under.writes, under.data.String())
	}
	// Uncorked, a write goes out at once.
	c.Write([]byte("four"))
	if under.writes != 2 {
		t.Fatalf("uncorked write held back")
	}
	// A corked batch over the limit goes out when it would overflow, in order.
	c.cork()
	big := bytes.Repeat([]byte("x"), corkLimit-10)
	c.Write(big)
	c.Write([]byte("0123456789abc")) // overflows: the held bytes, then this one
	c.uncork(time.Now().Add(time.Second))
	if under.writes != 4 || !bytes.HasSuffix(under.data.Bytes(), append(big, "0123456789abc"...)) {
		t.Fatalf("overflowing batch: %d writes", under.writes)
	}
}

// A peer that never reads cannot hold the writer past the deadline, and the connection stays
// failed afterwards (a partly written frame would corrupt the stream).
func TestCorkConnUncorkDeadline(t *testing.T) {
	a, b := net.Pipe() // synchronous: a write blocks until the peer reads
	defer a.Close()
	defer b.Close()
	c := &corkConn{Conn: a}
	c.cork()
	c.Write([]byte("never read"))
	start := time.Now()
	err := c.uncork(time.Now().Add(50 * time.Millisecond))
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("uncork to a stalled peer: %v, want a deadline error", err)
	}
	if time.Since(start) > 5*time.Second {
		t.Fatalf("uncork blocked %v", time.Since(start))
	}
	go io.Copy(io.Discard, b)
	if _, err := c.Write([]byte("more")); err == nil {
		t.Fatal("write after a failed flush succeeded")
	}
}
