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

// allowed reports whether an attempt would be admitted now, without keeping it.
func allowed(t *testing.T, th *throttle.Throttle, user, addr string) bool {
	t.Helper()
	a, _, ok := th.Begin(context.Background(), user, addr, "")
	a.Release()
	return ok
}

// check is Begin without keeping the reservation.
func check(th *throttle.Throttle, user, addr string) (time.Duration, bool) {
	a, retry, ok := th.Begin(context.Background(), user, addr, "")
	a.Release()
	return retry, ok
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
	retry, ok := check(th, "alice", "10.0.0.1:6000")
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
		if retry, ok := check(th, user, "192.0.2.9:4242"); ok || retry <= 0 {
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
		retry, ok := check(th, "eve", "203.0.113.1:1")
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

// TestParallelBurstAdmitsOnlyTheLimit: attempts count when admitted, so a burst arriving at
// once gets exactly the limit of admissions however many goroutines race for them.
func TestParallelBurstAdmitsOnlyTheLimit(t *testing.T) {
	th, _ := newThrottle(throttle.Config{BusyWait: -1}) // the admitted attempts are held: do not wait for them
	burst := func(user func(i int) string, addr string) (admitted []*throttle.Attempt, refused int) {
		var mu sync.Mutex
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range 200 {
			wg.Go(func() {
				<-start
				a, retry, ok := th.Begin(context.Background(), user(i), addr, "")
				mu.Lock()
				defer mu.Unlock()
				if !ok {
					if retry < time.Second {
						t.Errorf("refused with retry %v, want ≥ 1 s", retry)
					}
					refused++
					return
				}
				admitted = append(admitted, a)
			})
		}
		close(start)
		wg.Wait()
		return admitted, refused
	}
	admitted, refused := burst(func(int) string { return "olga" }, "192.0.2.50:1")
	if len(admitted) != 5 || refused != 195 {
		t.Fatalf("one username, one address: %d admitted, %d refused; want 5 and 195", len(admitted), refused)
	}
	for _, a := range admitted {
		a.Fail()
		a.Fail() // a second end is ignored
	}
	if allowed(t, th, "olga", "192.0.2.50:1") {
		t.Error("admitted after the 5 reserved attempts failed")
	}
	admitted, refused = burst(func(i int) string { return fmt.Sprint("user", i) }, "192.0.2.51:1")
	if len(admitted) != 20 || refused != 180 {
		t.Fatalf("many usernames, one address: %d admitted, %d refused; want 20 and 180", len(admitted), refused)
	}
	// Given back without counting, the slots admit again.
	for _, a := range admitted {
		a.Release()
	}
	if !allowed(t, th, "user0", "192.0.2.51:1") {
		t.Error("released slots were not given back")
	}
}

// TestBusySlotsWaitForTheAttemptsInFlight: attempts finding every slot held by attempts in
// flight wait for them: admitted when they succeed (many correct logins at once), refused when
// they fail; the number of checks stays at the limit.
func TestBusySlotsWaitForTheAttemptsInFlight(t *testing.T) {
	th := throttle.New(throttle.Config{BusyWait: time.Minute}) // real clock: waiting is real
	run := func(addr string, n int, succeed bool) (admitted, refused int) {
		var mu sync.Mutex
		var wg sync.WaitGroup
		for range n {
			wg.Go(func() {
				a, _, ok := th.Begin(context.Background(), "sam", addr, "")
				mu.Lock()
				defer mu.Unlock()
				if !ok {
					refused++
					return
				}
				admitted++
				if succeed {
					a.Succeed()
				} else {
					a.Fail()
				}
			})
		}
		wg.Wait()
		return admitted, refused
	}
	if admitted, refused := run("10.5.0.1:1", 32, true); admitted != 32 || refused != 0 {
		t.Errorf("32 correct logins at once: %d admitted, %d refused; want all admitted", admitted, refused)
	}
	if admitted, refused := run("10.5.0.2:1", 200, false); admitted != 5 || refused != 195 {
		t.Errorf("200 wrong logins at once: %d admitted, %d refused; want 5 and 195", admitted, refused)
	}
	// Waiting is bounded by the context; waiters are admitted as the slot frees.
	th2, _ := newThrottle(throttle.Config{UserAddrLimit: 1, BusyWait: time.Hour})
	held, _, ok := th2.Begin(context.Background(), "tom", "10.5.0.3:1", "")
	if !ok {
		t.Fatal("first attempt refused")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if _, retry, ok := th2.Begin(ctx, "tom", "10.5.0.3:1", ""); ok || retry < time.Second {
		t.Errorf("a waiter past its context: %v %v, want refused", retry, ok)
	}
	gone := make(chan bool, throttle.MaxWaiters)
	for range throttle.MaxWaiters {
		go func() {
			a, _, ok := th2.Begin(context.Background(), "tom", "10.5.0.3:1", "")
			if ok {
				a.Release()
			}
			gone <- ok
		}()
	}
	held.Release()
	for range throttle.MaxWaiters {
		if !<-gone {
			t.Error("a waiter was refused after the attempt in flight was released")
		}
	}
}

// TestSucceedGivesTheSlotBack: a success is not a failure, and holds no slot once ended.
func TestSucceedGivesTheSlotBack(t *testing.T) {
	th, _ := newThrottle(throttle.Config{UserAddrLimit: 2})
	for range 10 {
		a, _, ok := th.Begin(context.Background(), "pia", "10.3.0.1:1", "")
		if !ok {
			t.Fatal("a successful user was refused")
		}
		a.Succeed()
	}
}

// TestDistributedAttackLocksOutOnlyUntrustedClients is OWASP's device cookie scheme: after
// UserLimit failures on a username from many addresses, an untrusted client is refused at
// once with a retry delay, while a trusted address and a device token of the username still
// get their attempts, a device token within its own failure budget.
func TestDistributedAttackLocksOutOnlyUntrustedClients(t *testing.T) {
	th, clock := newThrottle(throttle.Config{UserLimit: 10, DeviceLimit: 3})
	th.Succeed("ivan", "198.18.0.1:443") // ivan's usual address
	for i := range 10 {
		a, _, ok := th.Begin(context.Background(), "ivan", fmt.Sprintf("100.64.0.%d:1", i), "")
		if !ok {
			t.Fatalf("attack attempt %d refused before the username limit", i)
		}
		a.Fail()
	}
	retry, ok := check(th, "ivan", "100.65.0.1:1")
	if ok || retry < time.Second || retry > 10*time.Minute+time.Second {
		t.Fatalf("untrusted client during the attack: %v, %v; want refused with a retry within the window", retry, ok)
	}
	if !allowed(t, th, "ivan", "198.18.0.1:1") {
		t.Error("the trusted address was refused during the attack")
	}
	if !allowed(t, th, "judy", "100.65.0.1:1") {
		t.Error("another username refused")
	}
	// A device token from a new address gets through, until its own budget is spent.
	for i := range 3 {
		a, _, ok := th.Begin(context.Background(), "ivan", fmt.Sprintf("100.70.0.%d:1", i), "dev-1")
		if !ok {
			t.Fatalf("device attempt %d refused", i)
		}
		if !a.Trusted() {
			t.Error("a device attempt is not reported trusted")
		}
		a.Fail()
	}
	if a, _, ok := th.Begin(context.Background(), "ivan", "100.71.0.1:1", "dev-1"); ok {
		a.Release()
		t.Error("a device token over its failure budget was admitted")
	}
	if a, _, ok := th.Begin(context.Background(), "ivan", "100.71.0.1:1", "dev-2"); !ok {
		t.Error("another device token was refused")
	} else {
		a.Succeed()
	}
	// The untrusted lock-out ends when the failures leave the window.
	clock.advance(10*time.Minute + time.Second)
	if !allowed(t, th, "ivan", "100.65.0.1:1") {
		t.Error("untrusted client still refused after the window")
	}
}

// TestUntrustedSlotsBoundedInParallel: untrusted attempts from many addresses reserve the
// username's slots too.
func TestUntrustedSlotsBoundedInParallel(t *testing.T) {
	th, _ := newThrottle(throttle.Config{UserLimit: 10, BusyWait: -1})
	var n sync.WaitGroup
	var mu sync.Mutex
	admitted := 0
	for i := range 100 {
		n.Go(func() {
			if _, _, ok := th.Begin(context.Background(), "quinn", fmt.Sprintf("100.64.1.%d:1", i), ""); ok {
				mu.Lock()
				admitted++
				mu.Unlock()
			}
		})
	}
	n.Wait()
	if admitted != 10 {
		t.Errorf("%d untrusted attempts admitted at once, want 10", admitted)
	}
	if !allowed(t, th, "quinn-other", "100.64.1.1:1") {
		t.Error("another username refused")
	}
}

// TestTrustAndDeviceStateRestore: persisted trust and device state are taken back.
func TestTrustAndDeviceStateRestore(t *testing.T) {
	th, clock := newThrottle(throttle.Config{UserLimit: 2, DeviceLimit: 2})
	until := clock.now().Add(time.Hour)
	th.Trust("rita", "10.4.0.1:9", until)
	if got := th.TrustedUntil("RITA", "10.4.0.1:1"); !got.Equal(until) {
		t.Errorf("TrustedUntil = %v, want %v", got, until)
	}
	th.Fail("rita", "10.4.0.2:1")
	th.Fail("rita", "10.4.0.3:1")
	if allowed(t, th, "rita", "10.4.0.4:1") {
		t.Fatal("untrusted client admitted over the username limit")
	}
	if !allowed(t, th, "rita", "10.4.0.1:1") {
		t.Error("restored trusted pair refused")
	}
	th.RestoreDevice("dev-x", throttle.State{Fails: []time.Time{clock.now(), clock.now()}, LockedUntil: clock.now().Add(time.Minute), Locks: 1})
	if a, _, ok := th.Begin(context.Background(), "rita", "10.4.0.5:1", "dev-x"); ok {
		a.Release()
		t.Error("restored locked device admitted")
	}
	if s := th.DeviceState("dev-x"); len(s.Fails) != 2 || s.Locks != 1 {
		t.Errorf("DeviceState = %+v", s)
	}
	clock.advance(time.Hour + time.Second)
	if !th.TrustedUntil("rita", "10.4.0.1:1").IsZero() {
		t.Error("trust did not expire")
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
	th := throttle.New(throttle.Config{})
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 200 {
				user := fmt.Sprint("u", i%7)
				addr := fmt.Sprintf("10.%d.0.%d:1", g, i%13)
				a, _, ok := th.Begin(context.Background(), user, addr, fmt.Sprint("d", i%3))
				if i%11 == 0 {
					th.Fail(user, addr)
				}
				switch {
				case !ok:
				case i%17 == 0:
					a.Succeed()
				case i%5 == 0:
					a.Release()
				default:
					a.Fail()
				}
				th.Fail(user, addr)
				if i%50 == 0 {
					th.Sweep()
				}
			}
		})
	}
	wg.Wait()
}
