package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// child is a server running as a child process of the bench (this binary re-executed with a
// hidden subcommand). Stop it with stop, which every caller defers right after start.
type child struct {
	name    string
	cmd     *exec.Cmd
	stdin   io.WriteCloser // the lifeline: closing it makes the child shut down
	stdout  *os.File
	addr    string
	started time.Time // just before exec
	done    chan struct{}
	waitErr error
	once    sync.Once
	forced  bool // it had to be signalled to stop
	stopErr error
	stderr  io.Writer // where its stderr goes, and notes about it
}

// startChild execs this binary with args (a hidden subcommand) plus the lifeline flag and
// returns once the child printed its address. env is added to the environment.
func startChild(ctx context.Context, name string, args, env []string, stderr io.Writer) (*child, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	cmd := exec.Command(exe, append(args, "--stdin-lifeline")...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stderr = stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		_ = stdin.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	cmd.Stdout = w
	c := &child{name: name, cmd: cmd, stdin: stdin, stdout: r, done: make(chan struct{}), stderr: stderr}
	c.started = time.Now()
	if err := cmd.Start(); err != nil {
		_ = stdin.Close()
		_ = r.Close()
		_ = w.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	_ = w.Close()
	go func() {
		c.waitErr = cmd.Wait()
		close(c.done)
	}()

	line := make(chan string, 1)
	go func() {
		s, _ := bufio.NewReader(r).ReadString('\n')
		line <- s
	}()
	select {
	case s := <-line:
		c.addr = strings.TrimSpace(s)
		if c.addr != "" {
			return c, nil
		}
		c.stop()
		return nil, fmt.Errorf("start %s: it printed no address: %v", name, c.waitErr)
	case <-ctx.Done():
		c.stop()
		return nil, ctx.Err()
	case <-time.After(30 * time.Second):
		c.stop()
		return nil, fmt.Errorf("start %s: no address within 30s", name)
	}
}

// stop asks the child to shut down by closing its lifeline (stdin), sends SIGTERM if it has
// not exited within 5 s and kills it 5 s after that, then waits for it. It is safe to call
// more than once. It returns an error if the child exited with a failure on its own.
func (c *child) stop() error {
	c.once.Do(func() {
		_ = c.stdin.Close()
		if !c.waitDone(5 * time.Second) {
			c.forced = true
			_ = c.cmd.Process.Signal(syscall.SIGTERM)
			if !c.waitDone(5 * time.Second) {
				_ = c.cmd.Process.Kill()
				<-c.done
			}
		}
		_ = c.stdout.Close()
		switch {
		case c.forced:
			// A slow shutdown is worth knowing about, but it does not spoil the measurements.
			fmt.Fprintf(c.stderr, "gatehouse-bench: %s did not stop within 5s of its lifeline closing (%v)\n", c.name, c.waitErr)
		case c.waitErr != nil:
			c.stopErr = fmt.Errorf("%s exited: %w", c.name, c.waitErr)
		}
	})
	return c.stopErr
}

func (c *child) waitDone(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-c.done:
		return true
	case <-t.C:
		return false
	}
}

// exited reports whether the child has ended.
func (c *child) exited() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// httpURL and wsURL are the child's base URL and Leosac websocket URL; wsURLAt is the URL of
// a websocket at another path.
func (c *child) httpURL() string            { return "http://" + c.addr }
func (c *child) wsURL() string              { return c.wsURLAt("/websocket") }
func (c *child) wsURLAt(path string) string { return "ws://" + c.addr + path }

// healthPoll is how often /healthz is polled while waiting for a child to be ready.
const healthPoll = 2 * time.Millisecond

// waitHealthy polls GET /healthz every 2 ms until it answers 200 and returns the time from the
// child's exec to that answer.
func (c *child) waitHealthy(ctx context.Context) (time.Duration, error) {
	tr := &http.Transport{DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	deadline := time.Now().Add(30 * time.Second)
	t := time.NewTicker(healthPoll)
	defer t.Stop()
	for {
		resp, err := hc.Get(c.httpURL() + "/healthz")
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return time.Since(c.started), nil
			}
		}
		if c.exited() {
			return 0, fmt.Errorf("%s exited before it was healthy: %v", c.name, c.waitErr)
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("%s not healthy within 30s", c.name)
		}
		select {
		case <-t.C:
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
}

// rss returns the child's resident set size (VmRSS in /proc/<pid>/status), in bytes.
func (c *child) rss() (int64, error) {
	return readRSS(c.cmd.Process.Pid)
}

func readRSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("read VmRSS: %w", err)
	}
	for line := range bytes.Lines(b) {
		rest, ok := bytes.CutPrefix(line, []byte("VmRSS:"))
		if !ok {
			continue
		}
		f := strings.Fields(string(rest))
		if len(f) != 2 || f[1] != "kB" {
			return 0, fmt.Errorf("read VmRSS: unexpected line %q", line)
		}
		kb, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("read VmRSS: %w", err)
		}
		return kb * 1024, nil
	}
	return 0, errors.New("read VmRSS: no VmRSS line in /proc/<pid>/status")
}

// loadAverage returns the 1-minute load average of the machine (0 where unknown).
func loadAverage() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0
	}
	v, _ := strconv.ParseFloat(f[0], 64)
	return v
}

// clockTick is the unit of utime and stime in /proc/<pid>/stat (USER_HZ, 100 on Linux).
const clockTick = 10 * time.Millisecond

// processCPU returns the user+system CPU time a process has used so far, all threads included.
func processCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("read CPU time: %w", err)
	}
	// The command name (field 2) may contain spaces; the fields after it are numbers.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, errors.New("read CPU time: unexpected /proc/<pid>/stat")
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, errors.New("read CPU time: unexpected /proc/<pid>/stat")
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64) // field 14
	stime, err2 := strconv.ParseInt(f[12], 10, 64) // field 15
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("read CPU time: %w", err)
	}
	return time.Duration(utime+stime) * clockTick, nil
}
