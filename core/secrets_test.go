package core

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSecrets(t *testing.T) {
	dir := t.TempDir()
	s, err := LoadSecrets(dir)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dir, SecretKeyFile))
	if err != nil || fi.Mode().Perm() != 0o600 || fi.Size() != 32 {
		t.Fatalf("key file: %v %v", fi, err)
	}
	sealed := s.Seal("hunter2", "smtp.password:a")
	if strings.Contains(sealed, "hunter2") || !strings.HasPrefix(sealed, "gs1:") {
		t.Fatalf("sealed form %q", sealed)
	}
	if again := s.Seal("hunter2", "smtp.password:a"); again == sealed {
		t.Error("two seals of one value are equal: the nonce is not random")
	}
	// The key is kept: another load opens what the first sealed.
	s2, err := LoadSecrets(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := s2.Open(sealed, "smtp.password:a"); err != nil || got != "hunter2" {
		t.Fatalf("Open = %q, %v", got, err)
	}
	if _, err := s2.Open(sealed, "smtp.password:b"); err == nil {
		t.Error("opened under another label")
	}
	altered := sealed[:len(sealed)-2] + "AA"
	if altered == sealed {
		altered = sealed[:len(sealed)-2] + "BB"
	}
	if _, err := s2.Open(altered, "smtp.password:a"); err == nil {
		t.Error("opened an altered value")
	}
	if _, err := s2.Open("hunter2", "smtp.password:a"); !errors.Is(err, ErrNotSealed) {
		t.Errorf("Open of a clear value: %v, want ErrNotSealed", err)
	}
	other, err := LoadSecrets(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := other.Open(sealed, "smtp.password:a"); err == nil {
		t.Error("opened with another data directory's key")
	}
	if err := os.WriteFile(filepath.Join(dir, SecretKeyFile), []byte("short"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadSecrets(dir); err == nil {
		t.Error("a malformed key file was accepted")
	}
}
