package core

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// SecretKeyFile holds the key that seals the secrets gatehouse must read back (passwords of
// outgoing SMTP servers, later reader keys): they are stored sealed in the database, so a copy
// of the database alone does not reveal them. Backups carry it (DataFiles).
const SecretKeyFile = "secret.key"

// sealedPrefix marks a sealed value and its format: AES-256-GCM, a 12-byte random nonce, then
// the ciphertext and tag, base64url without padding.
const sealedPrefix = "gs1:"

// ErrNotSealed is returned by Secrets.Open for a value that was not sealed by Seal.
var ErrNotSealed = errors.New("not a sealed value")

// Secrets seals and opens values with the data directory's secret key. It is safe for
// concurrent use.
type Secrets struct {
	aead cipher.AEAD
}

// LoadSecrets reads the secret key of the data directory dir, creating a random 32-byte key
// (mode 0600) on first use.
func LoadSecrets(dir string) (*Secrets, error) {
	path := filepath.Join(dir, SecretKeyFile)
	key, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		key = make([]byte, 32)
		if _, err := rand.Read(key); err != nil {
			return nil, fmt.Errorf("generate the secret key: %w", err)
		}
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if errors.Is(err, fs.ErrExist) { // another process created it meanwhile
			return LoadSecrets(dir)
		}
		if err != nil {
			return nil, fmt.Errorf("create the secret key: %w", err)
		}
		_, werr := f.Write(key)
		if cerr := f.Close(); werr == nil {
			werr = cerr
		}
		if werr != nil {
			return nil, fmt.Errorf("write the secret key %s: %w", path, werr)
		}
	} else if err != nil {
		return nil, fmt.Errorf("read the secret key: %w", err)
	}
	if len(key) != 32 {
		return nil, fmt.Errorf("the secret key %s is not 32 bytes long", path)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("secret key: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("secret key: %w", err)
	}
	return &Secrets{aead: aead}, nil
}

// Seal returns plaintext sealed for storage. label names what the value is (e.g.
// "smtp.password:smtp://mail.example.com:587"): a sealed value opens only under the same
// label, so one cannot be moved to another place.
func (s *Secrets) Seal(plaintext, label string) string {
	nonce := make([]byte, s.aead.NonceSize(), s.aead.NonceSize()+len(plaintext)+s.aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		panic("crypto/rand failed: " + err.Error()) // never happens on a supported system
	}
	return sealedPrefix + base64.RawURLEncoding.EncodeToString(s.aead.Seal(nonce, nonce, []byte(plaintext), []byte(label)))
}

// Open returns the plaintext of a value sealed by Seal under the same label. It fails with
// ErrNotSealed for a value without the sealed form, and with an error for one that was
// changed, sealed under another label or with another key.
func (s *Secrets) Open(sealed, label string) (string, error) {
	rest, ok := strings.CutPrefix(sealed, sealedPrefix)
	if !ok {
		return "", ErrNotSealed
	}
	b, err := base64.RawURLEncoding.DecodeString(rest)
	if err != nil || len(b) < s.aead.NonceSize()+s.aead.Overhead() {
		return "", errors.New("open a sealed value: malformed")
	}
	n := s.aead.NonceSize()
	plain, err := s.aead.Open(nil, b[:n], b[n:], []byte(label))
	if err != nil {
		return "", errors.New("open a sealed value: wrong key or label, or altered")
	}
	return string(plain), nil
}
