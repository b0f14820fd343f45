package throttle_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"gatehouse/modules/auth/throttle"
)

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *fakeClock {
	return &fakeClock{t: time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newThrottle(cfg throttle.Config) (*throttle.Throttle, *fakeClock) {
	th := throttle.New(cfg)
	c := newClock()
	th.SetClock(c.now)
	return th, c
}

func allowed(t *testing.T, th *throttle.Throttle, user, addr string) bool {
	t.Helper()
	_, ok := th.Allow(context.Background(), user, addr)
	return ok
}

func TestUserAddrLock(t *testing.T) {
	th, clock := newThrottle(throttle.Config{})
	for i := range 4 {
		th.Fail("alice", "10.0.0.1:5000")
		if !allowed(t, th, "alice", "10.0.0.1:5000") {
			t.Fatalf("locked after %d failures, want 5", i+1)
		}
	}
	th.Fail("alice", "10.0.0.1:5001") // another port of the same host counts
	retry, ok := th.Allow(context.Background(), "alice", "10.0.0.1:6000")
	if ok || retry <= 0 {
		t.Fatalf("after 5 failures Allow = %v, %v; want refused with a retry delay", retry, ok)
	}
	if retry < 30*time.Second || retry > 32*time.Second {
		t.Errorf("first lock retryAfter = %v, want about BaseDelay (30s)", retry)
	}
	if allowed(t, th, "ALICE", "10.0.0.1:1") {
		t.Error("usernames are not case-insensitive: ALICE got through")
	}
	if !allowed(t, th, "alice", "10.0.0.2:5000") {
		t.Error("alice locked from another address")
	}
	if !allowed(t, th, "bob", "10.0.0.1:5000") {
		t.Error("another user locked from alice's address")
	}
	clock.advance(31 * time.Second)
	if !allowed(t, th, "alice", "10.0.0.1:5000") {
		t.Error("still locked after the delay")
	}
}

func TestAddrLock(t *testing.T) {
	th, _ := newThrottle(throttle.Config{})
	for i := range 20 {
		if !allowed(t, th, "carol", "192.0.2.9:1") {
			t.Fatalf("address locked after %d failures, want 20", i)
		}
		th.Fail(fmt.Sprintf("user%d", i), fmt.Sprintf("192.0.2.9:%d", 1000+i))
	}
	for _, user := range []string{"carol", "user0", ""} {
		if retry, ok := th.Allow(context.Background(), user, "192.0.2.9:4242"); ok || retry <= 0 {
			t.Errorf("Allow(%q) from the locked address = %v, %v; want refused", user, retry, ok)
		}
	}
	if !allowed(t, th, "user0", "192.0.2.10:1") {
		t.Error("user0 locked from another address")
	}
}

func TestTokenLoginFailuresCountForAddress(t *testing.T) {
	th, _ := newThrottle(throttle.Config{AddrLimit: 3})
	for range 3 {
		th.Fail("", "198.51.100.7:1")
	}
	if allowed(t, th, "", "198.51.100.7:2") || allowed(t, th, "dave", "198.51.100.7:2") {
		t.Error("address not locked after failures without a username")
	}
}

func TestGrowingDelay(t *testing.T) {
	th, clock := newThrottle(throttle.Config{MaxDelay: 5 * time.Minute, Window: time.Hour})
	var delays []time.Duration
	for i := range 6 {
		if i == 0 {
			for range 5 {
				th.Fail("eve", "203.0.113.1:1")
			}
		} else {
			th.Fail("eve", "203.0.113.1:1") // one more failure once the lock ended
		}
		retry, ok := th.Allow(context.Background(), "eve", "203.0.113.1:1")
		if ok {
			t.Fatalf("lock %d: not locked", i+1)
		}
		delays = append(delays, retry)
		clock.advance(retry)
		if !allowed(t, th, "eve", "203.0.113.1:1") {
			t.Fatalf("lock %d: still locked after retryAfter %v", i+1, retry)
		}
	}
	if delays[1] <= delays[0] {
		t.Errorf("second lock %v not longer than the first %v", delays[1], delays[0])
	}
	for i := 1; i < len(delays); i++ {
		if delays[i] < delays[i-1] {
			t.Errorf("lock delays shrink: %v", delays)
		}
	}
	if last := delays[len(delays)-1]; last > 5*time.Minute+2*time.Second {
		t.Errorf("delay %v beyond MaxDelay", last)
	}
	t.Logf("lock delays: %v", delays)
}

func TestWindowExpiry(t *testing.T) {
	th, clock := newThrottle(throttle.Config{Window: 10 * time.Minute})
	for range 4 {
		th.Fail("frank", "10.1.1.1:1")
	}
	clock.advance(10*time.Minute + time.Second)
	th.Fail("frank", "10.1.1.1:1")
	if !allowed(t, th, "frank", "10.1.1.1:1") {
		t.Error("failures older than the window still counted")
	}
	// Failures inside the window add up.
	clock.advance(5 * time.Minute)
	for range 3 {
		th.Fail("frank", "10.1.1.1:1")
	}
	if !allowed(t, th, "frank", "10.1.1.1:1") {
		t.Fatal("locked after 4 failures within the window")
	}
	clock.advance(4 * time.Minute)
	th.Fail("frank", "10.1.1.1:1")
	if allowed(t, th, "frank", "10.1.1.1:1") {
		t.Error("5 failures within 10 minutes did not lock")
	}
}

func TestSucceedClearsUserAddrOnly(t *testing.T) {
	th, _ := newThrottle(throttle.Config{})
	const addr = "172.16.0.5:1"
	for range 4 {
		th.Fail("grace", addr)
	}
	for i := range 15 {
		th.Fail(fmt.Sprint("other", i), addr)
	}
	th.Succeed("grace", addr)
	if !allowed(t, th, "someone", addr) {
		t.Fatal("address locked after 19 failures")
	}
	th.Fail("other-last", addr) // the 20th failure from the address, counting grace's 4
	if allowed(t, th, "someone", addr) {
		t.Error("Succeed cleared the address record: 20 failures from the address did not lock it")
	}

	th2, _ := newThrottle(throttle.Config{})
	for range 5 {
		th2.Fail("heidi", addr)
	}
	if allowed(t, th2, "heidi", addr) {
		t.Fatal("not locked")
	}
	th2.Succeed("heidi", addr)
	if !allowed(t, th2, "heidi", addr) {
		t.Error("Succeed did not clear the user+address record")
	}
	th2.Fail("heidi", addr)
	if !allowed(t, th2, "heidi", addr) {
		t.Error("one failure after Succeed locked again: the count was not reset")
	}
}

func TestDistributedAttackSlowsButNeverLocksUser(t *testing.T) {
	const interval = 40 * time.Millisecond
	th := throttle.New(throttle.Config{UserLimit: 10, UserInterval: interval}) // real clock: rate.Limiter uses it
	for i := range 30 {
		th.Fail("ivan", fmt.Sprintf("100.64.%d.%d:1", i/250, i%250))
	}
	// The username is now slowed down: back-to-back attempts are spaced by the interval.
	start := time.Now()
	for i := range 3 {
		if _, ok := th.Allow(context.Background(), "ivan", fmt.Sprintf("100.65.0.%d:1", i)); !ok {
			t.Fatalf("attempt %d refused; the username must be slowed, not locked", i)
		}
	}
	if elapsed := time.Since(start); elapsed < interval {
		t.Errorf("3 attempts took %v, want them spaced by about %v", elapsed, interval)
	}
	// The real user, from their own address, trying after the interval always gets through.
	for i := range 5 {
		time.Sleep(interval + 5*time.Millisecond)
		retry, ok := th.Allow(context.Background(), "ivan", "198.18.0.1:443")
		if !ok {
			t.Fatalf("round %d: the real user was refused (retry %v) after waiting the interval", i, retry)
		}
	}
	// Other usernames are not slowed.
	start = time.Now()
	for range 5 {
		if !allowed(t, th, "judy", "198.18.0.1:443") {
			t.Fatal("another user refused")
		}
	}
	if elapsed := time.Since(start); elapsed > interval {
		t.Errorf("another user's attempts took %v: slowed down", elapsed)
	}
}

func TestDistributedAttackStormDoesNotLockOutUser(t *testing.T) {
	const interval = 10 * time.Millisecond
	th := throttle.New(throttle.Config{UserLimit: 10, UserInterval: interval})
	for i := range 10 {
		th.Fail("mallory-target", fmt.Sprintf("100.64.0.%d:1", i))
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			for ctx.Err() == nil {
				th.Allow(ctx, "mallory-target", fmt.Sprintf("100.66.0.%d:1", i))
			}
		})
	}
	time.Sleep(5 * interval)
	refused := 0
	for range 5 {
		if _, ok := th.Allow(context.Background(), "mallory-target", "198.18.0.1:443"); !ok {
			refused++
		}
		time.Sleep(interval)
	}
	cancel()
	wg.Wait()
	if refused > 0 {
		t.Errorf("the real user was refused %d of 5 times during the storm", refused)
	}
}

func TestAllowRespectsContextWhenSlowed(t *testing.T) {
	th := throttle.New(throttle.Config{UserLimit: 2, UserInterval: time.Hour})
	th.Fail("kim", "1.1.1.1:1")
	th.Fail("kim", "1.1.1.2:1")
	if !allowed(t, th, "kim", "1.1.1.3:1") { // the burst token
		t.Fatal("first attempt refused")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	retry, ok := th.Allow(ctx, "kim", "1.1.1.4:1")
	if ok || retry != time.Hour {
		t.Errorf("Allow = %v, %v; want refused with retry of one interval", retry, ok)
	}
	if time.Since(start) > 5*time.Second {
		t.Error("Allow waited beyond its context")
	}
}

func TestSweep(t *testing.T) {
	th, clock := newThrottle(throttle.Config{Window: time.Minute, BaseDelay: 5 * time.Minute, MaxDelay: time.Hour})
	th.Fail("leo", "10.9.0.1:1") // three idle records: ua, u, a
	for range 5 {
		th.Fail("mia", "10.9.0.2:1") // ua locked for 5 min, u and a not locked
	}
	if n := th.Sweep(); n != 6 {
		t.Errorf("Sweep right away kept %d records, want 6", n)
	}
	clock.advance(2 * time.Minute)
	if n := th.Sweep(); n != 1 {
		t.Errorf("Sweep after the window kept %d records, want only mia's locked one", n)
	}
	if allowed(t, th, "mia", "10.9.0.2:1") {
		t.Error("Sweep removed a running lock")
	}
	if !allowed(t, th, "leo", "10.9.0.1:1") {
		t.Error("leo refused")
	}
	clock.advance(4 * time.Minute)
	if n := th.Sweep(); n != 0 {
		t.Errorf("Sweep after the lock ended kept %d records, want 0", n)
	}
	if !allowed(t, th, "mia", "10.9.0.2:1") {
		t.Error("mia refused after her lock ended")
	}
}

func TestHost(t *testing.T) {
	tests := []struct{ in, want string }{
		{"192.0.2.1:8080", "192.0.2.1"},
		{"192.0.2.1", "192.0.2.1"},
		{"[2001:db8::1]:443", "2001:db8::1"},
		{"2001:db8::1", "2001:db8::1"},
		{"::1", "::1"},
		{"[::1]:0", "::1"},
		{"[fe80::1%eth0]:22", "fe80::1%eth0"},
		{"gate.example:443", "gate.example"},
		{"", ""},
	}
	for _, tc := range tests {
		if got := throttle.Host(tc.in); got != tc.want {
			t.Errorf("Host(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestIPv6AddressesKeyedByHost(t *testing.T) {
	th, _ := newThrottle(throttle.Config{})
	for i := range 5 {
		th.Fail("nina", fmt.Sprintf("[2001:db8::7]:%d", 40000+i))
	}
	if allowed(t, th, "nina", "[2001:db8::7]:1") {
		t.Error("IPv6 client with changing ports not locked")
	}
	if !allowed(t, th, "nina", "[2001:db8::8]:1") {
		t.Error("another IPv6 address locked")
	}
}

func TestConcurrentUse(t *testing.T) {
	// A tiny UserInterval: the usernames below soon count as under attack, and Allow then waits.
	th := throttle.New(throttle.Config{UserInterval: time.Millisecond})
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 200 {
				user := fmt.Sprint("u", i%7)
				addr := fmt.Sprintf("10.%d.0.%d:1", g, i%13)
				th.Allow(context.Background(), user, addr)
				th.Fail(user, addr)
				if i%17 == 0 {
					th.Succeed(user, addr)
				}
				if i%50 == 0 {
					th.Sweep()
				}
			}
		})
	}
	wg.Wait()
}
