package core

// Files that modules keep in the data directory besides the database (db.FileName). They are
// named here, in one place, so that `gatehouse backup` and `restore` carry every one of them:
// a module that keeps a new key or secret in the data directory adds its name to DataFiles.
const (
	// PINKeyFile holds the key under which PIN codes are hashed (directory module): without
	// it, a restored database rejects every PIN.
	PINKeyFile = "pin.key"
	// InitialPasswordFile receives the generated admin password on first start (auth module);
	// it is deleted when that password is changed.
	InitialPasswordFile = "initial-admin-password"
	// SelfSignedCertFile and SelfSignedKeyFile are the certificate kept by tls_self_signed;
	// keeping them keeps the fingerprint that clients pinned.
	SelfSignedCertFile = "tls/self-signed.crt"
	SelfSignedKeyFile  = "tls/self-signed.key"
)

// DataFiles returns the paths, relative to the data directory and slash-separated, of the
// files besides the database that a restore needs. Those that do not exist are skipped.
func DataFiles() []string {
	return []string{PINKeyFile, SecretKeyFile, InitialPasswordFile, SelfSignedCertFile, SelfSignedKeyFile}
}
