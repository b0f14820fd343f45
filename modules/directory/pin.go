package directory

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"gatehouse/core"
)

// PINKeyFile is the file in the data directory holding the PIN hashing key. It is kept out of
// the database so that a copy of the database alone does not allow guessing PINs offline;
// backups carry it (core.DataFiles).
const PINKeyFile = core.PINKeyFile

// PINHasher computes the keyed hash (HMAC-SHA256) under which PIN codes are stored and looked
// up. PINs are short, so an unkeyed hash would be reversed by trying all of them; the key makes
// that impossible without the key file.
type PINHasher struct {
	key []byte
}

// LoadPINHasher reads the key from dir, creating a random 32-byte key (mode 0600) on first use.
func LoadPINHasher(dir string) (*PINHasher, error) {
	path := filepath.Join(dir, PINKeyFile)
	key, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		key = make([]byte, 32)
		if _, err := rand.Read(key); err != nil {
			return nil, fmt.Errorf("generate PIN key: %w", err)
		}
		if err := os.WriteFile(path, key, 0o600); err != nil {
			return nil, fmt.Errorf("write PIN key: %w", err)
		}
		return &PINHasher{key: key}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read PIN key: %w", err)
	}
	if len(key) < 16 {
		return nil, fmt.Errorf("PIN key %s is too short", path)
	}
	return &PINHasher{key: key}, nil
}

// Hash returns the hex HMAC-SHA256 of a PIN.
func (p *PINHasher) Hash(pin string) string {
	mac := hmac.New(sha256.New, p.key)
	mac.Write([]byte(pin))
	return hex.EncodeToString(mac.Sum(nil))
}

// HashFor returns the hash of a PIN bound to a card (card + PIN credentials), so that the same
// PIN on two cards hashes differently.
func (p *PINHasher) HashFor(cardID string, nbBits int, pin string) string {
	return p.Hash(fmt.Sprintf("%s/%d/%s", cardID, nbBits, pin))
}
