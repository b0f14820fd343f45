package password

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// fast are cheap parameters for tests; the production defaults are exercised once.
var fast = Params{MemoryKiB: 64, Iterations: 1, Parallelism: 1}

func TestHashVerifyRoundTrip(t *testing.T) {
	h := NewHasher(fast, 0)
	ctx := context.Background()
	for _, pw := range []string{"correct horse battery staple", "", "ü€😀", strings.Repeat("x", MaxLength)} {
		enc, err := h.Hash(ctx, pw)
		if err != nil {
			t.Fatalf("Hash(%d bytes): %v", len(pw), err)
		}
		if err := h.Verify(ctx, enc, pw); err != nil {
			t.Errorf("Verify(own hash) = %v", err)
		}
		if err := h.Verify(ctx, enc, pw+"x"); !errors.Is(err, ErrMismatch) {
			t.Errorf("Verify(wrong password) = %v, want ErrMismatch", err)
		}
	}
	a, _ := h.Hash(ctx, "same")
	b, _ := h.Hash(ctx, "same")
	if a == b {
		t.Error("two hashes of one password are equal: salt not random")
	}
}

func TestVerifyWrongPassword(t *testing.T) {
	h := NewHasher(fast, 0)
	ctx := context.Background()
	enc, err := h.Hash(ctx, "hunter2")
	if err != nil {
		t.Fatal(err)
	}
	for _, pw := range []string{"hunter3", "Hunter2", "hunter2 ", "", "hunter"} {
		if err := h.Verify(ctx, enc, pw); !errors.Is(err, ErrMismatch) {
			t.Errorf("Verify(%q) = %v, want ErrMismatch", pw, err)
		}
	}
	// A hash made with other parameters verifies with its own parameters.
	other := NewHasher(Params{MemoryKiB: 128, Iterations: 2, Parallelism: 2}, 0)
	if err := other.Verify(ctx, enc, "hunter2"); err != nil {
		t.Errorf("Verify with a hasher of other params = %v", err)
	}
}

func TestDefaultParams(t *testing.T) {
	h := NewHasher(Params{}, 0)
	if h.params != DefaultParams {
		t.Errorf("zero Params gave %+v, want DefaultParams", h.params)
	}
	ctx := context.Background()
	enc, err := h.Hash(ctx, "pw")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(enc, "$argon2id$v=19$m=19456,t=2,p=1$") {
		t.Errorf("default hash %q", enc)
	}
	if err := h.Verify(ctx, enc, "pw"); err != nil {
		t.Errorf("Verify = %v", err)
	}
	if h.NeedsRehash(enc) {
		t.Error("NeedsRehash on a hash with the current params")
	}
}

func TestEmptyEncodedNeverMatches(t *testing.T) {
	h := NewHasher(fast, 0)
	for _, pw := range []string{"", "anything", strings.Repeat("\x00", 32)} {
		if err := h.Verify(context.Background(), "", pw); !errors.Is(err, ErrMismatch) {
			t.Errorf("Verify(\"\", %q) = %v, want ErrMismatch", pw, err)
		}
	}
}

func TestPHCFormat(t *testing.T) {
	h := NewHasher(Params{MemoryKiB: 96, Iterations: 3, Parallelism: 2}, 0)
	enc, err := h.Hash(context.Background(), "pw")
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`^\$argon2id\$v=19\$m=96,t=3,p=2\$([A-Za-z0-9+/]{22})\$([A-Za-z0-9+/]{43})$`)
	if !re.MatchString(enc) {
		t.Errorf("hash %q does not match the PHC format %s", enc, re)
	}
	p, salt, key, err := decode(enc)
	if err != nil || p != h.params || len(salt) != saltLen || len(key) != keyLen {
		t.Errorf("decode = %+v, %d-byte salt, %d-byte key, %v", p, len(salt), len(key), err)
	}
}

func TestMalformedHashes(t *testing.T) {
	h := NewHasher(fast, 0)
	good, err := h.Hash(context.Background(), "pw")
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(good, "$") // "", argon2id, v=19, m=..., salt, key
	with := func(i int, v string) string {
		p := append([]string(nil), parts...)
		p[i] = v
		return strings.Join(p, "$")
	}
	tests := []struct{ name, enc string }{
		{"garbage", "not a hash"},
		{"bcrypt", "$2a$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy"},
		{"argon2i", with(1, "argon2i")},
		{"no leading $", strings.TrimPrefix(good, "$")},
		{"too few parts", strings.Join(parts[:5], "$")},
		{"too many parts", good + "$extra"},
		{"bad version", with(2, "v=16")},
		{"version not a number", with(2, "v=x")},
		{"missing params", with(3, "")},
		{"bad params", with(3, "m=64;t=1;p=1")},
		{"params not numbers", with(3, "m=a,t=b,p=c")},
		{"zero memory", with(3, "m=0,t=1,p=1")},
		{"memory out of range", with(3, "m=4194305,t=1,p=1")},
		{"huge memory", with(3, "m=4294967295,t=1,p=1")},
		{"memory overflows uint32", with(3, "m=99999999999,t=1,p=1")},
		{"negative memory", with(3, "m=-64,t=1,p=1")},
		{"zero iterations", with(3, "m=64,t=0,p=1")},
		{"iterations out of range", with(3, "m=64,t=65,p=1")},
		{"zero lanes", with(3, "m=64,t=1,p=0")},
		{"lanes overflow uint8", with(3, "m=64,t=1,p=256")},
		{"bad salt base64", with(4, "!!!!not-base64!!!!")},
		{"padded salt", with(4, parts[4]+"==")},
		{"short salt", with(4, "AAAA")},
		{"empty salt", with(4, "")},
		{"bad key base64", with(5, "%%%")},
		{"short key", with(5, "AAAAAAAA")},
		{"empty key", with(5, "")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var err error
			func() {
				defer func() {
					if r := recover(); r != nil {
						t.Fatalf("Verify(%q) panicked: %v", tc.enc, r)
					}
				}()
				err = h.Verify(context.Background(), tc.enc, "pw")
			}()
			if err == nil {
				t.Fatalf("Verify(%q) = nil, want an error", tc.enc)
			}
			if errors.Is(err, ErrMismatch) {
				t.Errorf("Verify(%q) = ErrMismatch, want a malformed-hash error", tc.enc)
			}
			if !h.NeedsRehash(tc.enc) {
				t.Errorf("NeedsRehash(%q) = false for a malformed hash", tc.enc)
			}
		})
	}
}

func TestNeedsRehash(t *testing.T) {
	ctx := context.Background()
	h := NewHasher(fast, 0)
	enc, err := h.Hash(ctx, "pw")
	if err != nil {
		t.Fatal(err)
	}
	if h.NeedsRehash(enc) {
		t.Error("NeedsRehash = true for the hasher's own params")
	}
	for _, p := range []Params{
		{MemoryKiB: 128, Iterations: 1, Parallelism: 1},
		{MemoryKiB: 64, Iterations: 2, Parallelism: 1},
		{MemoryKiB: 64, Iterations: 1, Parallelism: 2},
	} {
		if !NewHasher(p, 0).NeedsRehash(enc) {
			t.Errorf("NeedsRehash = false for a hasher with %+v", p)
		}
	}
}

func TestMaxLength(t *testing.T) {
	h := NewHasher(fast, 0)
	ctx := context.Background()
	long := strings.Repeat("a", MaxLength+1)
	if _, err := h.Hash(ctx, long); err == nil {
		t.Error("Hash accepted a password longer than MaxLength")
	}
	// A hash of the first MaxLength bytes must not be matched by the longer password.
	enc, err := h.Hash(ctx, long[:MaxLength])
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Verify(ctx, enc, long); !errors.Is(err, ErrMismatch) {
		t.Errorf("Verify(too long) = %v, want ErrMismatch", err)
	}
}

func TestConcurrencyBound(t *testing.T) {
	h := NewHasher(fast, 1)
	enc, err := h.Hash(context.Background(), "pw")
	if err != nil {
		t.Fatal(err)
	}
	// Hold the only slot.
	if err := h.acquire(context.Background()); err != nil {
		t.Fatal(err)
	}
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := h.Hash(cancelled, "pw"); !errors.Is(err, context.Canceled) {
		t.Errorf("Hash with the slot held and ctx cancelled = %v, want context.Canceled", err)
	}
	if err := h.Verify(cancelled, enc, "pw"); !errors.Is(err, context.Canceled) {
		t.Errorf("Verify with the slot held and ctx cancelled = %v, want context.Canceled", err)
	}
	if err := h.Verify(cancelled, "", "pw"); !errors.Is(err, context.Canceled) {
		t.Errorf("dummy Verify with the slot held and ctx cancelled = %v, want context.Canceled", err)
	}
	timeout, cancel2 := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel2()
	if err := h.Verify(timeout, enc, "pw"); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Verify waiting for the slot = %v, want DeadlineExceeded", err)
	}

	// A waiter proceeds once the slot is released.
	done := make(chan error, 1)
	go func() { done <- h.Verify(context.Background(), enc, "pw") }()
	select {
	case err := <-done:
		t.Fatalf("Verify ran although the slot was held: %v", err)
	case <-time.After(30 * time.Millisecond):
	}
	h.release()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Verify after release = %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Verify never got the slot")
	}
	if len(h.slots) != 0 {
		t.Errorf("%d slots still held", len(h.slots))
	}
}

func TestConcurrentUseHonoursBound(t *testing.T) {
	h := NewHasher(fast, 2)
	enc, err := h.Hash(context.Background(), "pw")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	peak := 0
	stop := make(chan struct{})
	go func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			mu.Lock()
			peak = max(peak, len(h.slots))
			mu.Unlock()
			time.Sleep(50 * time.Microsecond)
		}
	}()
	for range 16 {
		wg.Go(func() {
			if err := h.Verify(context.Background(), enc, "pw"); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	close(stop)
	mu.Lock()
	defer mu.Unlock()
	if peak > 2 || cap(h.slots) != 2 {
		t.Errorf("peak %d concurrent hashes (cap %d), want at most 2", peak, cap(h.slots))
	}
}

func TestGenerate(t *testing.T) {
	const alphabet = "abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"
	for _, n := range []int{0, 1, 16, 100} {
		pw, err := Generate(n)
		if err != nil {
			t.Fatal(err)
		}
		if len(pw) != n {
			t.Errorf("Generate(%d) has length %d", n, len(pw))
		}
	}
	counts := map[rune]int{}
	total := 0
	for total < 20000 {
		pw, err := Generate(200)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range pw {
			if !strings.ContainsRune(alphabet, r) {
				t.Fatalf("Generate produced %q, outside the alphabet", r)
			}
			counts[r]++
		}
		total += len(pw)
	}
	if len(counts) != len(alphabet) {
		var missing []string
		for _, r := range alphabet {
			if counts[r] == 0 {
				missing = append(missing, string(r))
			}
		}
		t.Errorf("characters never generated in %d: %v", total, missing)
	}
	// Rough uniformity: expected ≈ 351 per character; allow a wide band.
	exp := total / len(alphabet)
	for r, c := range counts {
		if c < exp/2 || c > exp*2 {
			t.Errorf("character %q appeared %d times, expected about %d", r, c, exp)
		}
	}
	for _, lookalike := range "0O1lI" {
		if counts[lookalike] != 0 {
			t.Errorf("look-alike %q generated", lookalike)
		}
	}
	a, _ := Generate(32)
	b, _ := Generate(32)
	if a == b {
		t.Error("two generated passwords are equal")
	}
}

func FuzzVerify(f *testing.F) {
	h := NewHasher(fast, 0)
	good, err := h.Hash(context.Background(), "pw")
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range []string{good, "", "$argon2id$v=19$m=64,t=1,p=1$AAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAA",
		"$argon2id$v=19$m=8,t=1,p=255$AAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAA", "$$$$$", "$argon2id$v=19$m=,t=,p=$$"} {
		f.Add(s, "pw")
	}
	f.Add("0", strings.Repeat("0", MaxLength+1))
	f.Fuzz(func(t *testing.T, enc, pw string) {
		// Keep each run cheap: the decoder accepts up to 4 GiB of memory and 64 iterations,
		// which is legal but too slow to fuzz; parse first and only hash small parameters.
		p, _, _, err := decode(enc)
		if err == nil && (uint64(p.MemoryKiB)*uint64(p.Iterations) > 1<<14) {
			return
		}
		verr := h.Verify(context.Background(), enc, pw)
		switch {
		case len(pw) > MaxLength:
			// Too long to ever match: refused before the hash is even parsed.
			if !errors.Is(verr, ErrMismatch) {
				t.Fatalf("over-long password: Verify = %v, want ErrMismatch", verr)
			}
		case enc == "" && !errors.Is(verr, ErrMismatch):
			t.Fatalf("empty hash: Verify = %v, want ErrMismatch", verr)
		case enc != "" && err != nil && (verr == nil || errors.Is(verr, ErrMismatch)):
			t.Fatalf("malformed %q: Verify = %v, want a malformed-hash error", enc, verr)
		}
		_ = h.NeedsRehash(enc)
		_ = fmt.Sprint(verr)
	})
}
