// Package password hashes and verifies passwords with argon2id (golang.org/x/crypto/argon2).
//
// Hashes are stored in the PHC string format
//
//	$argon2id$v=19$m=<KiB>,t=<iterations>,p=<lanes>$<salt b64>$<hash b64>
//
// so the parameters travel with each hash and can be raised later without breaking existing
// passwords (NeedsRehash tells when). Hashing is deliberately slow and memory-hungry, so a
// Hasher bounds how many hashes run at once: a login flood queues instead of exhausting memory.
package password

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"runtime"
	"strings"

	"golang.org/x/crypto/argon2"
)

// Params are the argon2id cost parameters.
type Params struct {
	MemoryKiB   uint32 `json:"memory_kib"`
	Iterations  uint32 `json:"iterations"`
	Parallelism uint8  `json:"parallelism"`
}

// DefaultParams follow the OWASP recommendation for argon2id (19 MiB, 2 iterations, 1 lane).
var DefaultParams = Params{MemoryKiB: 19 * 1024, Iterations: 2, Parallelism: 1}

const (
	saltLen = 16
	keyLen  = 32
	// MaxLength bounds the password bytes accepted, so hashing cost cannot be driven by input.
	MaxLength = 1024
)

// ErrMismatch is returned by Verify when the password does not match.
var ErrMismatch = errors.New("password mismatch")

// Hasher hashes and verifies passwords with at most a fixed number running at once.
type Hasher struct {
	params Params
	slots  chan struct{}
}

// NewHasher returns a Hasher with the given parameters (zero fields take DefaultParams) that
// runs at most concurrency hashes at once (0 means GOMAXPROCS).
func NewHasher(p Params, concurrency int) *Hasher {
	if p.MemoryKiB == 0 {
		p.MemoryKiB = DefaultParams.MemoryKiB
	}
	if p.Iterations == 0 {
		p.Iterations = DefaultParams.Iterations
	}
	if p.Parallelism == 0 {
		p.Parallelism = DefaultParams.Parallelism
	}
	if concurrency <= 0 {
		concurrency = runtime.GOMAXPROCS(0)
	}
	return &Hasher{params: p, slots: make(chan struct{}, concurrency)}
}

func (h *Hasher) acquire(ctx context.Context) error {
	select {
	case h.slots <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (h *Hasher) release() { <-h.slots }

// Hash returns the PHC string of a fresh argon2id hash of pw with a random salt.
func (h *Hasher) Hash(ctx context.Context, pw string) (string, error) {
	if len(pw) > MaxLength {
		return "", fmt.Errorf("password longer than %d bytes", MaxLength)
	}
	salt := make([]byte, saltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("hash password: %w", err)
	}
	if err := h.acquire(ctx); err != nil {
		return "", err
	}
	defer h.release()
	p := h.params
	key := argon2.IDKey([]byte(pw), salt, p.Iterations, p.MemoryKiB, p.Parallelism, keyLen)
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, p.MemoryKiB, p.Iterations,
		p.Parallelism, b64.EncodeToString(salt), b64.EncodeToString(key)), nil
}

// Verify checks pw against a PHC string in constant time. It returns ErrMismatch for a wrong
// password and another error for a malformed hash. An empty encoded hash never matches (a user
// without a password cannot log in), but still costs one hash, so that timing does not reveal
// which accounts exist or have a password.
func (h *Hasher) Verify(ctx context.Context, encoded, pw string) error {
	if len(pw) > MaxLength {
		return ErrMismatch
	}
	dummy := encoded == ""
	p, salt, want := h.params, make([]byte, saltLen), make([]byte, keyLen)
	if !dummy {
		var err error
		if p, salt, want, err = decode(encoded); err != nil {
			return err
		}
	}
	if err := h.acquire(ctx); err != nil {
		return err
	}
	defer h.release()
	got := argon2.IDKey([]byte(pw), salt, p.Iterations, p.MemoryKiB, p.Parallelism, uint32(len(want)))
	if subtle.ConstantTimeCompare(got, want) != 1 || dummy {
		return ErrMismatch
	}
	return nil
}

// NeedsRehash reports whether a stored hash was made with other parameters than the Hasher's.
func (h *Hasher) NeedsRehash(encoded string) bool {
	p, _, _, err := decode(encoded)
	return err != nil || p != h.params
}

// decode parses a PHC argon2id string.
func decode(encoded string) (Params, []byte, []byte, error) {
	var p Params
	parts := strings.Split(encoded, "$")
	if len(parts) != 6 || parts[0] != "" || parts[1] != "argon2id" {
		return p, nil, nil, errors.New("not an argon2id hash")
	}
	var version int
	if _, err := fmt.Sscanf(parts[2], "v=%d", &version); err != nil || version != argon2.Version {
		return p, nil, nil, errors.New("unsupported argon2 version")
	}
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &p.MemoryKiB, &p.Iterations, &p.Parallelism); err != nil {
		return p, nil, nil, fmt.Errorf("argon2 parameters: %w", err)
	}
	if p.MemoryKiB == 0 || p.MemoryKiB > 1<<22 || p.Iterations == 0 || p.Iterations > 64 || p.Parallelism == 0 {
		return p, nil, nil, errors.New("argon2 parameters out of range")
	}
	b64 := base64.RawStdEncoding
	salt, err := b64.DecodeString(parts[4])
	if err != nil || len(salt) < 8 {
		return p, nil, nil, errors.New("argon2 salt malformed")
	}
	key, err := b64.DecodeString(parts[5])
	if err != nil || len(key) < 16 || len(key) > 128 {
		return p, nil, nil, errors.New("argon2 key malformed")
	}
	return p, salt, key, nil
}

// Generate returns a random password of n characters from an alphabet without look-alikes.
func Generate(n int) (string, error) {
	const alphabet = "abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"
	out := make([]byte, n)
	buf := make([]byte, n*2)
	for i := 0; i < n; {
		if _, err := rand.Read(buf); err != nil {
			return "", fmt.Errorf("generate password: %w", err)
		}
		for _, b := range buf {
			// Rejection sampling keeps the distribution uniform.
			if int(b) >= 256-256%len(alphabet) {
				continue
			}
			out[i] = alphabet[int(b)%len(alphabet)]
			i++
			if i == n {
				break
			}
		}
	}
	return string(out), nil
}
