package cert

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"gatehouse/core"
	"gatehouse/modules/resource"
)

// Challenge parameters (contract §6).
const (
	// ChallengeLength is the number of characters of a challenge, each from A–Z a–z 0–9.
	ChallengeLength = 20
	// ChallengeTTL is how long a challenge may be answered.
	ChallengeTTL = 30 * time.Second
	// ModernContext is prefixed to the challenge in a modern proof, so that a signature made
	// for gatehouse cannot be replayed elsewhere and the other way round.
	ModernContext = "gatehouse-auth-v1\n"
	// bindBurst is how many challenges a bind may get at once.
	bindBurst = 5
	// sourceBurst is how many challenges one source address may get at once.
	sourceBurst = 20
	// maxSources bounds the source addresses remembered; beyond it, new sources are refused
	// until a sweep (a flood of that many addresses is what the global budget is for).
	maxSources = 100000
	// bindIdle is how long a bind with no outstanding challenge is remembered (its rate
	// limiter refills in less).
	bindIdle = time.Minute
	// sweepEvery is how often, at most, forgotten binds are swept (lazily, on issuance).
	sweepEvery = 30 * time.Second
	// maxSignature is the longest signature looked at (an 8192-bit RSA signature).
	maxSignature = MaxRSABits / 8
)

// KeyRef names the key a modern proof will be made with: either the key itself
// (PubKeyB64PEM, read by ParsePublicKey) or its key id (KeyID, the fingerprint in hex). Exactly
// one of them is set.
type KeyRef struct {
	PubKeyB64PEM string
	KeyID        string
}

// challenges is the in-memory challenge store: one state per bind, one budget per source
// address.
type challenges struct {
	mu          sync.Mutex
	binds       map[string]*bindState
	bindLimit   rate.Limit // per-bind issuance rate
	sources     map[string]*sourceState
	sourceLimit rate.Limit    // per-source issuance rate
	global      *rate.Limiter // issuance across binds
	legacy      *rate.Limiter // budget of legacy RSA key checks
	now         func() time.Time
	lastSweep   time.Time
}

// bindState is what is known of one bind.
type bindState struct {
	limiter   *rate.Limiter
	challenge string    // "" when none is outstanding
	modern    bool      // the outstanding challenge expects a modern proof…
	keyFP     string    // …by the key with this fingerprint
	expires   time.Time // of the outstanding challenge
	seen      time.Time // last issuance
}

// sourceState is the issuance budget of one source address (all its connections together).
type sourceState struct {
	limiter *rate.Limiter
	seen    time.Time // last issuance
}

// SourceKey returns the unit a client's challenges are budgeted by, from its address as the
// transport knows it ("host:port", or anything else such as "unix(uid=1000)", taken whole): the
// IPv4 address, or the /64 network of an IPv6 address (one subscriber's allocation, which a
// client can rotate through at will).
func SourceKey(remote string) string {
	host := remote
	if h, _, err := net.SplitHostPort(remote); err == nil {
		host = h
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return remote
	}
	ip = ip.Unmap().WithZone("")
	if ip.Is4() {
		return ip.String()
	}
	return netip.PrefixFrom(ip, 64).Masked().String()
}

const alphanumerics = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

// newChallenge returns ChallengeLength characters drawn uniformly from alphanumerics with
// crypto/rand (rejection sampling: bytes >= 248 are dropped, so there is no modulo bias).
func newChallenge() string {
	var out [ChallengeLength]byte
	var buf [2 * ChallengeLength]byte
	n := 0
	for n < ChallengeLength {
		_, _ = rand.Read(buf[:]) // never fails (crypto/rand panics rather than return an error)
		for _, b := range buf {
			if b >= 248 { // 248 = 4 × 62
				continue
			}
			out[n] = alphanumerics[int(b)%len(alphanumerics)]
			n++
			if n == ChallengeLength {
				break
			}
		}
	}
	return string(out[:])
}

// NewChallenge issues a challenge for bind, which identifies the connection that will answer
// it (a per-connection uuid, say), asked by a client at remote (its address, see SourceKey).
// It replaces the bind's outstanding challenge, if any. Three budgets must all allow it: the
// bind's, the source address's (so that a client reconnecting in a loop, a new bind each time,
// cannot spend the server's budget), and the server's; a refusal spends none of them. key
// nil asks for a legacy proof (RSA, no key named); otherwise the proof must be a modern one by
// the named key, which must be an Ed25519 or ECDSA P-256 key (whether it is registered is only
// checked by Verify, so that issuance says nothing about registered keys).
// Errors: INVALID_ARGUMENT for an empty bind or a bad KeyRef; RATE_LIMITED when the bind, the
// source or the server asks for too many challenges.
func (m *Module) NewChallenge(bind, remote string, key *KeyRef) (string, error) {
	if bind == "" {
		return "", core.E(core.InvalidArgument, "No bind given for the challenge.", nil)
	}
	var fp string
	if key != nil {
		var err error
		if fp, err = keyRefFingerprint(key); err != nil {
			return "", err
		}
	}
	c := m.ch
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	c.sweep(now)
	st := c.binds[bind]
	if st == nil {
		st = &bindState{limiter: rate.NewLimiter(c.bindLimit, bindBurst)}
	}
	source := SourceKey(remote)
	src := c.sources[source]
	if src == nil {
		src = &sourceState{limiter: rate.NewLimiter(c.sourceLimit, sourceBurst)}
	}
	// Check every budget before spending any: a refused request costs nothing.
	switch {
	case st.limiter.TokensAt(now) < 1:
		return "", core.E(core.RateLimited, "Too many challenges: wait before asking again.", nil)
	case src.limiter.TokensAt(now) < 1:
		return "", core.E(core.RateLimited, "Too many challenges from this address: wait before asking again.", nil)
	case c.global.TokensAt(now) < 1 || len(c.sources) >= maxSources && c.sources[source] == nil:
		return "", core.E(core.RateLimited, "Too many challenges: try again later.", nil)
	}
	st.limiter.AllowN(now, 1)
	src.limiter.AllowN(now, 1)
	c.global.AllowN(now, 1)
	src.seen = now
	c.sources[source] = src
	c.binds[bind] = st
	st.challenge, st.modern, st.keyFP = newChallenge(), key != nil, fp
	st.expires, st.seen = now.Add(ChallengeTTL), now
	return st.challenge, nil
}

// keyRefFingerprint returns the fingerprint a KeyRef names.
func keyRefFingerprint(key *KeyRef) (string, error) {
	switch {
	case key.PubKeyB64PEM != "" && key.KeyID != "":
		return "", core.E(core.InvalidArgument, "Name the key by pub_key or by key_id, not both.", nil)
	case key.KeyID != "":
		fp := strings.ToLower(strings.TrimSpace(key.KeyID))
		if !validFingerprint(fp) {
			return "", core.E(core.InvalidArgument, "key_id must be the key's SHA-256 fingerprint: 64 hexadecimal digits.", nil)
		}
		return fp, nil
	case key.PubKeyB64PEM != "":
		k, err := ParsePublicKey(key.PubKeyB64PEM)
		if err != nil {
			return "", core.E(core.InvalidArgument, upperFirst(err.Error())+".", nil)
		}
		if k.Algorithm == AlgRSA {
			return "", core.E(core.InvalidArgument, "A modern proof needs an Ed25519 or ECDSA P-256 key; RSA keys use the legacy proof.", nil)
		}
		return k.Fingerprint, nil
	}
	return "", core.E(core.InvalidArgument, "Name the key by pub_key or key_id.", nil)
}

// sweep forgets binds with no live challenge that have not asked for one in bindIdle, and
// sources whose budget is full again. It runs at most every sweepEvery, under c.mu, so no
// goroutine is needed.
func (c *challenges) sweep(now time.Time) {
	if now.Sub(c.lastSweep) < sweepEvery {
		return
	}
	c.lastSweep = now
	for b, st := range c.binds {
		if (st.challenge == "" || now.After(st.expires)) && now.Sub(st.seen) > bindIdle {
			delete(c.binds, b)
		}
	}
	for k, src := range c.sources {
		if src.limiter.TokensAt(now) >= sourceBurst {
			delete(c.sources, k)
		}
	}
}

// take removes and returns the bind's outstanding challenge; ok is false when there is none
// or it expired.
func (c *challenges) take(bind string) (challenge string, modern bool, keyFP string, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	st := c.binds[bind]
	if st == nil || st.challenge == "" {
		return "", false, "", false
	}
	challenge, modern, keyFP = st.challenge, st.modern, st.keyFP
	expired := c.now().After(st.expires)
	st.challenge, st.modern, st.keyFP = "", false, ""
	return challenge, modern, keyFP, !expired
}

// Forget drops what is known of a bind (its outstanding challenge and rate state); transports
// may call it when the connection closes. Without it the state is swept a minute after use.
func (m *Module) Forget(bind string) {
	m.ch.mu.Lock()
	delete(m.ch.binds, bind)
	m.ch.mu.Unlock()
}

// errProof is the one answer to a failed proof: it says nothing an attacker could use.
var errProof = core.E(core.PermissionDenied, "Authentication failed.", nil)

// Verify consumes the bind's outstanding challenge (whatever the outcome: a challenge is
// answered once) and checks the proof, returning the key owner's user id.
//
// A legacy challenge (NewChallenge with key nil) expects an RSA PKCS#1 v1.5 signature over the
// raw challenge bytes with no hash (crypto.Hash(0)), as sysadm clients make it. Only registered
// RSA keys whose modulus is as long as the signature are tried, at most LegacyMaxKeys of them
// (oldest first), and each key tried is charged to a server-wide budget of
// LegacyChecksPerMinute; when the budget is spent Verify answers RATE_LIMITED.
//
// A modern challenge expects, from the named key only, an Ed25519 signature or an ECDSA P-256
// signature (SHA-256, ASN.1 DER) over ModernContext + challenge.
//
// No challenge, an expired one, a challenge of another bind, a key not registered (or whose
// owner was deleted), a signature of the wrong length or that does not verify: all answer the
// same PERMISSION_DENIED. An empty signature is INVALID_ARGUMENT. Whether the
// owner's account may log in (enabled, valid) is for the caller to check (auth.LoginUser).
func (m *Module) Verify(ctx context.Context, bind string, signature []byte) (userID int64, err error) {
	challenge, modern, keyFP, ok := m.ch.take(bind)
	if len(signature) == 0 {
		return 0, core.E(core.InvalidArgument, "The signature is missing.", nil)
	}
	if !ok || len(signature) > maxSignature {
		return 0, errProof
	}
	if modern {
		userID, err = m.verifyModern(ctx, challenge, keyFP, signature)
	} else {
		userID, err = m.verifyLegacy(ctx, challenge, signature)
	}
	if err != nil {
		if ce, _ := core.StatusOf(err); ce.Code != core.PermissionDenied && ce.Code != core.RateLimited {
			m.log.Error().Err(err).Msg("certificate proof could not be checked")
		}
		return 0, err
	}
	return userID, nil
}

// keyRow is a candidate key of a proof.
type keyRow struct {
	UserID    int64  `gorm:"column:user_id"`
	Algorithm string `gorm:"column:algorithm"`
	PublicKey []byte `gorm:"column:public_key"`
}

func (m *Module) verifyModern(ctx context.Context, challenge, keyFP string, sig []byte) (int64, error) {
	var rows []keyRow
	if err := m.db.Read.WithContext(ctx).Raw(`SELECT c.user_id, c.algorithm, c.public_key FROM certificates c
		JOIN users u ON u.id = c.user_id WHERE c.fingerprint = ?`, keyFP).Scan(&rows).Error; err != nil {
		return 0, resource.DBError(fmt.Errorf("look up key: %w", err))
	}
	if len(rows) == 0 {
		return 0, errProof
	}
	pub, err := x509.ParsePKIXPublicKey(rows[0].PublicKey)
	if err != nil {
		return 0, fmt.Errorf("stored key %s: %w", short(keyFP), err)
	}
	msg := []byte(ModernContext + challenge)
	switch k := pub.(type) {
	case ed25519.PublicKey:
		if len(sig) == ed25519.SignatureSize && ed25519.Verify(k, msg, sig) {
			return rows[0].UserID, nil
		}
	case *ecdsa.PublicKey:
		digest := sha256.Sum256(msg)
		if ecdsa.VerifyASN1(k, digest[:], sig) {
			return rows[0].UserID, nil
		}
	}
	return 0, errProof // an RSA key named for a modern proof fails too
}

func (m *Module) verifyLegacy(ctx context.Context, challenge string, sig []byte) (int64, error) {
	if len(sig) < MinRSABits/8 {
		return 0, errProof
	}
	var rows []keyRow
	if err := m.db.Read.WithContext(ctx).Raw(`SELECT c.user_id, c.algorithm, c.public_key FROM certificates c
		JOIN users u ON u.id = c.user_id WHERE c.algorithm = ? AND c.key_size = ? ORDER BY c.id LIMIT ?`,
		AlgRSA, len(sig), m.LegacyMaxKeys+1).Scan(&rows).Error; err != nil {
		return 0, resource.DBError(fmt.Errorf("look up RSA keys: %w", err))
	}
	if len(rows) > m.LegacyMaxKeys {
		m.log.Warn().Int("max", m.LegacyMaxKeys).Int("signature_bytes", len(sig)).
			Msg("more registered RSA keys of this size than a legacy proof tries: the newest cannot log in with it; use the modern proof")
		rows = rows[:m.LegacyMaxKeys]
	}
	if len(rows) == 0 {
		return 0, errProof
	}
	m.ch.mu.Lock()
	allowed := m.ch.legacy.AllowN(m.ch.now(), len(rows))
	m.ch.mu.Unlock()
	if !allowed {
		return 0, core.E(core.RateLimited, "Too many legacy certificate logins: try again later.", nil)
	}
	msg := []byte(challenge)
	for _, r := range rows {
		pub, err := x509.ParsePKIXPublicKey(r.PublicKey)
		if err != nil {
			m.log.Error().Err(err).Msg("stored RSA key cannot be read")
			continue
		}
		k, ok := pub.(*rsa.PublicKey)
		if !ok || k.Size() != len(sig) {
			continue
		}
		if rsa.VerifyPKCS1v15(k, crypto.Hash(0), msg, sig) == nil {
			return r.UserID, nil
		}
	}
	return 0, errProof
}
