package cert_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"math/big"
	"strings"
	"sync"
	"testing"
	"time"

	"gatehouse/modules/cert"
)

// Keys are generated once per test binary: RSA generation is slow and CPU is shared.
var (
	keysOnce sync.Once
	rsaKeys  []*rsa.PrivateKey // 2048 bits
	rsa1024  *rsa.PrivateKey
)

func testKeys(t testing.TB) {
	t.Helper()
	keysOnce.Do(func() {
		for range 4 {
			k, err := rsa.GenerateKey(rand.Reader, 2048)
			if err != nil {
				panic(err)
			}
			rsaKeys = append(rsaKeys, k)
		}
		var err error
		if rsa1024, err = rsa.GenerateKey(rand.Reader, 1024); err != nil {
			panic(err)
		}
	})
}

func newEd25519(t testing.TB) ed25519.PrivateKey {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return priv
}

func newECDSA(t testing.TB, c elliptic.Curve) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(c, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// pemOf returns the PEM PUBLIC KEY of a public key.
func pemOf(t testing.TB, pub crypto.PublicKey) string {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
}

// b64 is how sysadm clients send a key: base64 of the PEM text.
func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

// pubB64 returns base64 of the PEM PUBLIC KEY of a public key.
func pubB64(t testing.TB, pub crypto.PublicKey) string { return b64(pemOf(t, pub)) }

// fingerprint returns the SHA-256 hex of the key's DER SubjectPublicKeyInfo, computed here
// independently of the module.
func fingerprint(t testing.TB, pub crypto.PublicKey) string {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:])
}

// certPEM returns a self-signed X.509 certificate (PEM) for the key, valid from notBefore to
// notAfter.
func certPEM(t testing.TB, priv crypto.Signer, notBefore, notAfter time.Time) string {
	t.Helper()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(42),
		Subject:      pkix.Name{CommonName: "alice laptop"},
		NotBefore:    notBefore,
		NotAfter:     notAfter,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, priv.Public(), priv)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}

func TestParsePublicKeyAccepts(t *testing.T) {
	testKeys(t)
	ed := newEd25519(t)
	p256 := newECDSA(t, elliptic.P256())
	rk := rsaKeys[0]
	pkcs1 := string(pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: x509.MarshalPKCS1PublicKey(&rk.PublicKey)}))
	wrapped := b64(pemOf(t, ed.Public()))
	var lines []string
	for len(wrapped) > 64 {
		lines, wrapped = append(lines, wrapped[:64]), wrapped[64:]
	}
	lines = append(lines, wrapped)
	for _, tc := range []struct {
		name, input, alg string
		pub              crypto.PublicKey
		size             int
	}{
		{"rsa pkix base64", pubB64(t, &rk.PublicKey), "rsa", &rk.PublicKey, 256},
		{"rsa pkcs1 raw pem", pkcs1, "rsa", &rk.PublicKey, 256},
		{"ed25519 raw pem", pemOf(t, ed.Public()), "ed25519", ed.Public(), 0},
		{"ed25519 base64 wrapped at 64 columns", strings.Join(lines, "\n") + "\n", "ed25519", ed.Public(), 0},
		{"ed25519 base64 unpadded", strings.TrimRight(b64(pemOf(t, ed.Public())), "="), "ed25519", ed.Public(), 0},
		{"ecdsa p256 base64", pubB64(t, &p256.PublicKey), "ecdsa-p256", &p256.PublicKey, 0},
		{"ecdsa p256 certificate", b64(certPEM(t, p256, time.Now().Add(-time.Hour), time.Now().Add(time.Hour))), "ecdsa-p256", &p256.PublicKey, 0},
		{"expired rsa certificate", b64(certPEM(t, rk, time.Now().Add(-48*time.Hour), time.Now().Add(-24*time.Hour))), "rsa", &rk.PublicKey, 256},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k, err := cert.ParsePublicKey(tc.input)
			if err != nil {
				t.Fatalf("ParsePublicKey: %v", err)
			}
			if k.Algorithm != tc.alg || k.Size != tc.size {
				t.Errorf("algorithm %q size %d, want %q %d", k.Algorithm, k.Size, tc.alg, tc.size)
			}
			if want := fingerprint(t, tc.pub); k.Fingerprint != want {
				t.Errorf("fingerprint %s, want %s", k.Fingerprint, want)
			}
			if fp, err := cert.Fingerprint(tc.input); err != nil || fp != k.Fingerprint {
				t.Errorf("Fingerprint = %q, %v", fp, err)
			}
		})
	}
}

func TestParsePublicKeyRejects(t *testing.T) {
	testKeys(t)
	ed := newEd25519(t)
	p384 := newECDSA(t, elliptic.P384())
	edDER, err := x509.MarshalPKCS8PrivateKey(ed)
	if err != nil {
		t.Fatal(err)
	}
	privPEM := string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: edDER}))
	for _, tc := range []struct {
		name, input, want string
	}{
		{"empty", "", "empty"},
		{"garbage base64", "!!!not base64!!!", "neither PEM nor base64"},
		{"base64 of text", b64("hello world"), "does not hold a PEM block"},
		{"rsa 1024", pubB64(t, &rsa1024.PublicKey), "1024 bits is too small"},
		{"rsa 1024 certificate", b64(certPEM(t, rsa1024, time.Now(), time.Now().Add(time.Hour))), "too small"},
		{"ecdsa p384", pubB64(t, &p384.PublicKey), "P-384 is not supported"},
		{"private key", b64(privPEM), "private key"},
		{"certificate request", b64(string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: []byte{1, 2}}))), `"CERTIFICATE REQUEST" block is not a public key`},
		{"corrupt public key", b64(string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: []byte("junk")}))), "cannot be read"},
		{"huge", strings.Repeat("A", cert.MaxKeyInput+1), "longer than"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k, err := cert.ParsePublicKey(tc.input)
			if err == nil {
				t.Fatalf("accepted as %s", k.Algorithm)
			}
			if !errors.Is(err, cert.ErrKey) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q, want ErrKey mentioning %q", err, tc.want)
			}
		})
	}
}

// FuzzParsePublicKey: whatever the input, ParsePublicKey does not panic; what it accepts is one
// of the three algorithms, with a fingerprint that is the SHA-256 of a DER that parses back to
// the same key; what it refuses is an ErrKey.
func FuzzParsePublicKey(f *testing.F) {
	testKeys(f)
	ed := newEd25519(f)
	p256 := newECDSA(f, elliptic.P256())
	for _, s := range []string{
		pubB64(f, &rsaKeys[0].PublicKey), pemOf(f, ed.Public()), pubB64(f, &p256.PublicKey),
		b64(certPEM(f, p256, time.Now(), time.Now().Add(time.Hour))), pubB64(f, &rsa1024.PublicKey),
		"", "-----BEGIN PUBLIC KEY-----\n-----END PUBLIC KEY-----\n", b64("-----BEGIN X-----\nAA==\n-----END X-----\n"), "====",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, input string) {
		k, err := cert.ParsePublicKey(input)
		if err != nil {
			if !errors.Is(err, cert.ErrKey) {
				t.Fatalf("error %v does not wrap ErrKey", err)
			}
			return
		}
		switch k.Algorithm {
		case cert.AlgRSA, cert.AlgEd25519, cert.AlgECDSAP256:
		default:
			t.Fatalf("accepted algorithm %q", k.Algorithm)
		}
		sum := sha256.Sum256(k.DER)
		if k.Fingerprint != hex.EncodeToString(sum[:]) {
			t.Fatalf("fingerprint is not the SHA-256 of the DER")
		}
		again, err := cert.ParsePublicKey(b64(string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: k.DER}))))
		if err != nil || again.Fingerprint != k.Fingerprint || again.Algorithm != k.Algorithm {
			t.Fatalf("the stored form does not parse back to the same key: %v", err)
		}
	})
}
