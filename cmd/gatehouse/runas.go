package main

import (
	"errors"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"

	"gatehouse/core"
)

// runAs is the account --user names, resolved.
type runAs struct {
	name     string
	uid, gid int
	groups   []int // supplementary groups, the primary one included
}

// resolveUser looks up --user NAME (a name, or a numeric uid) for a process running with
// uid self. It returns nil when there is nothing to switch (the process already runs as that
// user), and an error when the user is unknown or when a non-root process names another user:
// only root can switch, and the service manager should start gatehouse as that user instead.
func resolveUser(name string, self int) (*runAs, error) {
	u, err := user.Lookup(name)
	if _, nerr := strconv.Atoi(name); err != nil && nerr == nil {
		if byID, idErr := user.LookupId(name); idErr == nil {
			u, err = byID, nil
		}
	}
	if err != nil {
		return nil, fmt.Errorf("--user %s: %w", name, err)
	}
	uid, err1 := strconv.Atoi(u.Uid)
	gid, err2 := strconv.Atoi(u.Gid)
	if err := errors.Join(err1, err2); err != nil {
		return nil, fmt.Errorf("--user %s: uid %q gid %q: %w", name, u.Uid, u.Gid, err)
	}
	if uid == self {
		return nil, nil
	}
	if self != 0 {
		return nil, fmt.Errorf("--user %s (uid %d): this process runs as uid %d and only root can switch users; "+
			"start gatehouse as %s instead (systemd: User=%s) or drop --user", u.Username, uid, self, u.Username, u.Username)
	}
	r := &runAs{name: u.Username, uid: uid, gid: gid}
	ids, err := u.GroupIds()
	if err != nil {
		return nil, fmt.Errorf("--user %s: supplementary groups: %w", name, err)
	}
	for _, s := range ids {
		g, err := strconv.Atoi(s)
		if err != nil {
			return nil, fmt.Errorf("--user %s: group id %q: %w", name, s, err)
		}
		r.groups = append(r.groups, g)
	}
	return r, nil
}

// dropPrivileges switches the whole process (every thread, Go ≥ 1.16 on Linux) to r's groups,
// gid and uid, for good. It runs once the listeners are bound and before the data directory is
// opened: the Unix socket is first given to r (so r's group may connect, as if r had created
// it), and afterwards the data directory and the TLS files must be usable by r, which is
// checked here so that the failure names the user and the fix.
func dropPrivileges(r *runAs, cfg core.Config) error {
	if cfg.Unix != "" {
		if err := os.Chown(cfg.Unix, r.uid, r.gid); err != nil {
			return fmt.Errorf("--user %s: give the unix socket to the user: %w", r.name, err)
		}
	}
	if err := syscall.Setgroups(r.groups); err != nil {
		return fmt.Errorf("--user %s: setgroups %v: %w", r.name, r.groups, err)
	}
	if err := syscall.Setgid(r.gid); err != nil {
		return fmt.Errorf("--user %s: setgid %d: %w", r.name, r.gid, err)
	}
	if err := syscall.Setuid(r.uid); err != nil {
		return fmt.Errorf("--user %s: setuid %d: %w", r.name, r.uid, err)
	}
	if os.Getuid() != r.uid || os.Geteuid() != r.uid || os.Getgid() != r.gid || os.Getegid() != r.gid {
		return fmt.Errorf("--user %s: the switch to uid %d gid %d did not take", r.name, r.uid, r.gid)
	}
	return checkAccess(r, cfg)
}

// checkAccess verifies, as the dropped user, that the data directory (created if missing) and
// the files at its top are readable and writable, and that the TLS files are readable.
func checkAccess(r *runAs, cfg core.Config) error {
	const rw, rwx = 0o6, 0o7 // R_OK|W_OK, R_OK|W_OK|X_OK
	fix := fmt.Sprintf("give it to the user (chown -R %s %s) or choose another --data", r.name, cfg.Data)
	if err := os.MkdirAll(cfg.Data, 0o700); err != nil {
		return fmt.Errorf("--user %s (uid %d): cannot create the data directory %s: %w; create it for the user or choose another --data",
			r.name, r.uid, cfg.Data, err)
	}
	if err := syscall.Access(cfg.Data, rwx); err != nil {
		return fmt.Errorf("--user %s (uid %d): the data directory %s is not readable and writable by the user: %w; %s",
			r.name, r.uid, cfg.Data, err, fix)
	}
	entries, err := os.ReadDir(cfg.Data)
	if err != nil {
		return fmt.Errorf("--user %s (uid %d): read the data directory %s: %w; %s", r.name, r.uid, cfg.Data, err, fix)
	}
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		p := filepath.Join(cfg.Data, e.Name())
		if err := syscall.Access(p, rw); err != nil {
			return fmt.Errorf("--user %s (uid %d): %s in the data directory is not readable and writable by the user: %w; %s",
				r.name, r.uid, p, err, fix)
		}
	}
	for _, p := range []string{cfg.TLSCert, cfg.TLSKey} {
		if p == "" {
			continue
		}
		if err := syscall.Access(p, 0o4); err != nil {
			return fmt.Errorf("--user %s (uid %d): the TLS file %s is not readable by the user: %w", r.name, r.uid, p, err)
		}
	}
	return nil
}
