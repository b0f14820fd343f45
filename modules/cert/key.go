package cert

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
)

// The algorithms of registered keys, as stored and listed.
const (
	AlgRSA       = "rsa"
	AlgEd25519   = "ed25519"
	AlgECDSAP256 = "ecdsa-p256"
)

// Limits of accepted keys.
const (
	// MaxKeyInput is the longest key input accepted (base64 or PEM text), in bytes.
	MaxKeyInput = 16 << 10
	// MinRSABits and MaxRSABits bound the RSA modulus: below 2048 bits is too weak; above
	// 8192 bits a legacy proof would cost too much to try.
	MinRSABits = 2048
	MaxRSABits = 8192
)

// PublicKey is a parsed, accepted public key.
type PublicKey struct {
	// Key is the *rsa.PublicKey, ed25519.PublicKey or *ecdsa.PublicKey (P-256).
	Key crypto.PublicKey
	// DER is the key's SubjectPublicKeyInfo in DER.
	DER []byte
	// Fingerprint is the SHA-256 of DER in lower-case hex: the key's id.
	Fingerprint string
	// Algorithm is AlgRSA, AlgEd25519 or AlgECDSAP256.
	Algorithm string
	// Size is the RSA modulus length in bytes (the length of its signatures); 0 for others.
	Size int
}

// ErrKey is wrapped by every error of ParsePublicKey; the wrapping error's text says what is
// wrong with the input in words a user can act on, and never quotes the input.
var ErrKey = errors.New("invalid public key")

func keyErr(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrKey}, args...)...)
}

// ParsePublicKey reads a public key as clients send it: base64 of a PEM block (the sysadm
// clients' form) or the PEM text itself. The PEM block may be a "PUBLIC KEY" (PKIX
// SubjectPublicKeyInfo), a "CERTIFICATE" (X.509; only its public key is used — its dates,
// issuer and signature are not checked, see the README) or an "RSA PUBLIC KEY" (PKCS#1).
// Accepted keys: RSA of 2048 to 8192 bits, Ed25519, ECDSA on P-256. Any other input returns
// an error wrapping ErrKey.
func ParsePublicKey(input string) (*PublicKey, error) {
	if len(input) > MaxKeyInput {
		return nil, keyErr("longer than %d bytes", MaxKeyInput)
	}
	s := strings.TrimSpace(input)
	if s == "" {
		return nil, keyErr("empty")
	}
	var pemText []byte
	if strings.HasPrefix(s, "-----BEGIN") {
		pemText = []byte(s)
	} else {
		b, err := decodeBase64(s)
		if err != nil {
			return nil, keyErr("neither PEM nor base64 of PEM")
		}
		pemText = b
	}
	block, _ := pem.Decode(pemText)
	if block == nil {
		if len(bytes.TrimSpace(pemText)) > 0 && !bytes.Contains(pemText, []byte("-----BEGIN")) {
			return nil, keyErr("the base64 does not hold a PEM block")
		}
		return nil, keyErr("malformed PEM block")
	}
	var pub any
	switch block.Type {
	case "PUBLIC KEY":
		k, err := x509.ParsePKIXPublicKey(block.Bytes)
		if err != nil {
			return nil, keyErr("the PUBLIC KEY block cannot be read (unsupported algorithm or corrupt)")
		}
		pub = k
	case "CERTIFICATE":
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, keyErr("the CERTIFICATE block cannot be read (unsupported algorithm or corrupt)")
		}
		pub = c.PublicKey
	case "RSA PUBLIC KEY":
		k, err := x509.ParsePKCS1PublicKey(block.Bytes)
		if err != nil {
			return nil, keyErr("the RSA PUBLIC KEY block cannot be read")
		}
		pub = k
	default:
		if strings.Contains(block.Type, "PRIVATE") {
			return nil, keyErr("this is a private key: send only the public key and keep the private key secret")
		}
		return nil, keyErr("a PEM %q block is not a public key; send a PUBLIC KEY or CERTIFICATE", pemType(block.Type))
	}
	return accept(pub)
}

// accept checks the key type and size and computes the stored form.
func accept(pub any) (*PublicKey, error) {
	k := &PublicKey{Key: pub}
	switch p := pub.(type) {
	case *rsa.PublicKey:
		bits := p.N.BitLen()
		if bits < MinRSABits {
			return nil, keyErr("RSA key of %d bits is too small (at least %d)", bits, MinRSABits)
		}
		if bits > MaxRSABits {
			return nil, keyErr("RSA key of %d bits is too large (at most %d)", bits, MaxRSABits)
		}
		if p.E < 3 || p.E%2 == 0 {
			return nil, keyErr("RSA public exponent is invalid")
		}
		k.Algorithm, k.Size = AlgRSA, p.Size()
	case ed25519.PublicKey:
		if len(p) != ed25519.PublicKeySize {
			return nil, keyErr("Ed25519 key of the wrong length")
		}
		k.Algorithm = AlgEd25519
	case *ecdsa.PublicKey:
		if p.Curve != elliptic.P256() {
			return nil, keyErr("ECDSA curve %s is not supported (only P-256)", p.Curve.Params().Name)
		}
		k.Algorithm = AlgECDSAP256
	default:
		return nil, keyErr("unsupported key type %T (use RSA >= %d bits, Ed25519 or ECDSA P-256)", pub, MinRSABits)
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, keyErr("the key cannot be encoded")
	}
	k.DER = der
	k.Fingerprint = fingerprintOf(der)
	return k, nil
}

// Fingerprint returns the fingerprint (SHA-256 of the DER SubjectPublicKeyInfo, lower-case
// hex) of a key given as ParsePublicKey accepts it: the key id of a registered key.
func Fingerprint(pubKeyB64PEM string) (string, error) {
	k, err := ParsePublicKey(pubKeyB64PEM)
	if err != nil {
		return "", err
	}
	return k.Fingerprint, nil
}

func fingerprintOf(der []byte) string {
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:])
}

// validFingerprint reports whether s is 64 lower-case hex digits.
func validFingerprint(s string) bool {
	if len(s) != 2*sha256.Size {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// pemEncode returns the PEM "PUBLIC KEY" block of a DER SubjectPublicKeyInfo.
func pemEncode(der []byte) string {
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
}

// decodeBase64 decodes standard base64 with or without padding, ignoring line breaks and
// spaces (clients wrap it); URL-safe base64 is accepted too.
func decodeBase64(s string) ([]byte, error) {
	s = strings.Map(func(r rune) rune {
		if r == '\n' || r == '\r' || r == ' ' || r == '\t' {
			return -1
		}
		return r
	}, s)
	s = strings.TrimRight(s, "=")
	if strings.ContainsAny(s, "-_") {
		return base64.RawURLEncoding.DecodeString(s)
	}
	return base64.RawStdEncoding.DecodeString(s)
}

// pemType returns a PEM type safe to quote in a message: printable ASCII, at most 40 bytes.
func pemType(t string) string {
	if len(t) > 40 {
		t = t[:40]
	}
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r > 0x7e {
			return '?'
		}
		return r
	}, t)
}
