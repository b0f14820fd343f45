package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"gatehouse/core"
	"gatehouse/db"
	"gatehouse/modules/wsapi/wstest"
)

const testAdminPassword = "long-enough-pw"

// accessSite is a site whose decisions a backup must keep: doors, card, PIN and card+PIN
// credentials of users with and without access.
type accessSite struct {
	doors   []int64
	granted string // a card granted on every door
	probes  []map[string]any
}

func buildAccessSite(t *testing.T, admin *wstest.Client) accessSite {
	t.Helper()
	var s accessSite
	for i := range 2 {
		s.doors = append(s.doors, createdID(t, admin.Call("door.create",
			map[string]any{"attributes": map[string]any{"alias": fmt.Sprintf("Door %d", i)}})))
	}
	var allowed []int64
	cred := func(typ string, attrs map[string]any) {
		createdID(t, admin.Call("credential.create", map[string]any{"credential-type": typ, "attributes": attrs}))
	}
	for i := range 4 {
		uid := createdID(t, admin.Call("user.create", map[string]any{"attributes": map[string]any{"username": fmt.Sprintf("holder%d", i)}}))
		if i < 3 {
			allowed = append(allowed, uid)
		}
		card := fmt.Sprintf("5a:%02x:00:01", i)
		cardPIN := fmt.Sprintf("6b:%02x:00:02", i)
		pin := fmt.Sprintf("%d%d%d%d", i+1, i+2, i+3, i+4)
		cred("rfid-card", map[string]any{"alias": fmt.Sprintf("card %d", i), "owner_id": uid, "card-id": card, "nb-bits": 32})
		cred("pin-code", map[string]any{"alias": fmt.Sprintf("pin %d", i), "owner_id": uid, "code": pin})
		cred("rfid-card-pin", map[string]any{"alias": fmt.Sprintf("card+pin %d", i), "owner_id": uid, "card-id": cardPIN, "nb-bits": 32, "code": "9" + pin})
		s.probes = append(s.probes,
			map[string]any{"card_id": card, "nb_bits": 32},
			map[string]any{"pin": pin},
			map[string]any{"pin": "0" + pin}, // nobody's
			map[string]any{"card_id": cardPIN, "nb_bits": 32, "pin": "9" + pin},
			map[string]any{"card_id": cardPIN, "nb_bits": 32, "pin": "8" + pin}, // wrong PIN
		)
		if i == 0 {
			s.granted = card
		}
	}
	s.probes = append(s.probes, map[string]any{"card_id": "ee:ee:ee:ee", "nb_bits": 32}) // unknown card
	var frames []map[string]any
	for day := range 7 {
		frames = append(frames, map[string]any{"day": day, "start-time": "00:00", "end-time": "23:59"})
	}
	sid := createdID(t, admin.Call("schedule.create", map[string]any{"attributes": map[string]any{"name": "always", "timeframes": frames}}))
	mustOK(t, admin.Call("schedule.update", map[string]any{"schedule_id": sid, "attributes": map[string]any{},
		"mapping": []map[string]any{{"alias": "holders", "users": allowed, "doors": s.doors}}}))
	return s
}

// decisions presents every probe at every door and returns "granted/reason" per presentation,
// once the engine grants the granted card (it applies changes from the bus).
func (s accessSite) decisions(t *testing.T, admin *wstest.Client) []string {
	t.Helper()
	coretestEventually(t, 15*time.Second, func() error {
		var res struct {
			Granted bool   `json:"granted"`
			Reason  string `json:"reason"`
		}
		r := admin.Call("reader.simulate", map[string]any{"door_id": s.doors[0], "card_id": s.granted, "nb_bits": 32})
		mustOK(t, r)
		r.Decode(t, &res)
		if !res.Granted {
			return fmt.Errorf("the granted card is %s", res.Reason)
		}
		return nil
	})
	var out []string
	for _, door := range s.doors {
		for _, p := range s.probes {
			req := map[string]any{"door_id": door}
			for k, v := range p {
				req[k] = v
			}
			r := admin.Call("reader.simulate", req)
			mustOK(t, r)
			var res struct {
				Granted bool   `json:"granted"`
				Reason  string `json:"reason"`
			}
			r.Decode(t, &res)
			out = append(out, fmt.Sprintf("door %d %v: granted=%v %s", door, p, res.Granted, res.Reason))
		}
	}
	return out
}

func coretestEventually(t *testing.T, timeout time.Duration, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %v", timeout, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func wsURL(url string) string { return "ws" + strings.TrimPrefix(url, "http") + "/websocket" }

func runCmd(args []string, stdin string) (int, string, string) {
	var out, errOut bytes.Buffer
	code := run(context.Background(), args, strings.NewReader(stdin), &out, &errOut, env(nil))
	return code, out.String(), errOut.String()
}

// TestBackupRestoreKeepsEveryDecision backs up a real server while it swipes and creates
// users, restores the archive into a fresh directory, starts a server on it, and checks that
// every card, PIN and card+PIN credential decides as before (PINs need pin.key).
func TestBackupRestoreKeepsEveryDecision(t *testing.T) {
	data := t.TempDir()
	url, _, stop := startServe(t, []string{"--data", data, "--listen", "127.0.0.1:0"},
		map[string]string{"GATEHOUSE_ADMIN_PASSWORD": testAdminPassword})
	admin := wstest.Dial(t, wsURL(url))
	admin.Login("admin", testAdminPassword)
	site := buildAccessSite(t, admin)
	before := site.decisions(t, admin)

	// Writers keep going during the backup: swipes (events) and new users.
	var wg sync.WaitGroup
	var writes atomic.Int64
	stopWriters := make(chan struct{})
	for w := range 2 {
		c := wstest.Dial(t, wsURL(url))
		c.Login("admin", testAdminPassword)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stopWriters:
					return
				default:
				}
				var r wstest.Reply
				if w == 0 {
					r = c.Call("reader.simulate", map[string]any{"door_id": site.doors[i%2], "card_id": site.granted, "nb_bits": 32})
				} else {
					r = c.Call("user.create", map[string]any{"attributes": map[string]any{"username": fmt.Sprintf("busy%d", i)}})
				}
				if r.StatusCode != 0 {
					t.Errorf("write during the backup: %s %d %s", r.Type, r.StatusCode, r.Content)
					return
				}
				writes.Add(1)
			}
		}()
	}
	coretestEventually(t, 10*time.Second, func() error {
		if writes.Load() < 20 {
			return fmt.Errorf("%d writes so far", writes.Load())
		}
		return nil
	})
	file := filepath.Join(t.TempDir(), "gatehouse-backup.tar.gz")
	code, out, errOut := runCmd([]string{"backup", file, "--data", data}, "")
	atBackup := writes.Load()
	close(stopWriters)
	wg.Wait()
	if code != 0 {
		t.Fatalf("backup while serving: exit %d: %s", code, errOut)
	}
	if !strings.Contains(out, core.PINKeyFile) {
		t.Errorf("backup output does not list %s: %s", core.PINKeyFile, out)
	}
	if st, err := os.Stat(file); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("backup file: %v %v, want mode 0600", err, st)
	}
	t.Logf("backup taken while %d writes had completed", atBackup)

	// Restore into a directory that does not exist yet, and serve it.
	restored := filepath.Join(t.TempDir(), "restored")
	if code, out, errOut := runCmd([]string{"restore", file, "--data", restored}, ""); code != 0 {
		t.Fatalf("restore: exit %d: %s %s", code, out, errOut)
	}
	for _, name := range []string{db.FileName, core.PINKeyFile, core.SecretKeyFile} {
		if st, err := os.Stat(filepath.Join(restored, name)); err != nil || st.Mode().Perm() != 0o600 {
			t.Errorf("restored %s: %v %v, want mode 0600", name, err, st)
		}
	}
	url2, _, stop2 := startServe(t, []string{"--data", restored, "--listen", "127.0.0.1:0"}, nil)
	admin2 := wstest.Dial(t, wsURL(url2))
	admin2.Login("admin", testAdminPassword)
	after := site.decisions(t, admin2)
	// The restored event log is a new history: subscribers resynchronise rather than resume.
	epoch := func(c *wstest.Client) string {
		var res struct {
			Epoch string `json:"epoch"`
		}
		r := c.Call("events.subscribe", map[string]any{"topics": []string{"door.>"}})
		mustOK(t, r)
		r.Decode(t, &res)
		return res.Epoch
	}
	if e1, e2 := epoch(admin), epoch(admin2); e1 == "" || e1 == e2 {
		t.Errorf("event log epoch after the restore %q, before %q: want a new one", e2, e1)
	}
	if len(after) != len(before) {
		t.Fatalf("%d decisions after the restore, %d before", len(after), len(before))
	}
	granted := 0
	for i := range before {
		if before[i] != after[i] {
			t.Errorf("decision changed by backup and restore:\n before %s\n after  %s", before[i], after[i])
		}
		if strings.Contains(before[i], "granted=true") {
			granted++
		}
	}
	if granted == 0 || granted == len(before) {
		t.Errorf("%d of %d presentations granted: the site does not exercise both outcomes", granted, len(before))
	}
	if !slices.ContainsFunc(before, func(d string) bool { return strings.Contains(d, "pin:") && strings.Contains(d, "granted=true") }) {
		t.Errorf("no PIN presentation was granted: the test would not notice a lost pin.key:\n%s", strings.Join(before, "\n"))
	}

	// A restore refuses a running server's data, even with --force, and leaves it alone.
	code, _, errOut = runCmd([]string{"restore", file, "--data", restored, "--force"}, "")
	if code != 1 || !strings.Contains(errOut, "running") || !strings.Contains(errOut, "stop the server") {
		t.Errorf("restore over a running server: exit %d: %s", code, errOut)
	}
	if r := admin2.Call("whoami", map[string]any{}); r.StatusCode != 0 {
		t.Errorf("the running server was disturbed by the refused restore: %s", r.Content)
	}
	if code := stop2(); code != 0 {
		t.Fatalf("restored server exit %d", code)
	}
	// A stopped server's non-empty data: refused without --force, replaced with it.
	code, _, errOut = runCmd([]string{"restore", file, "--data", restored}, "")
	if code != 1 || !strings.Contains(errOut, "not empty") || !strings.Contains(errOut, "--force") {
		t.Errorf("restore into a non-empty directory: exit %d: %s", code, errOut)
	}
	if code, _, errOut := runCmd([]string{"restore", file, "--data", restored, "--force"}, ""); code != 0 {
		t.Errorf("restore --force into a stopped server's data: exit %d: %s", code, errOut)
	}
	stop()
}

// TestRestoreRefusesBadArchives checks that restore verifies what it installs: a truncated or
// altered archive, or a file that is no archive, leaves the target directory empty.
func TestRestoreRefusesBadArchives(t *testing.T) {
	data := t.TempDir()
	_, _, stop := startServe(t, []string{"--data", data, "--listen", "127.0.0.1:0"},
		map[string]string{"GATEHOUSE_ADMIN_PASSWORD": testAdminPassword})
	file := filepath.Join(t.TempDir(), "b.tar.gz")
	if code, _, errOut := runCmd([]string{"backup", file, "--data", data}, ""); code != 0 {
		t.Fatalf("backup: exit %d: %s", code, errOut)
	}
	stop()
	good, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for name, b := range map[string][]byte{
		"truncated": good[:len(good)/2],
		"altered":   append(append([]byte{}, good[:len(good)-40]...), bytes.Repeat([]byte{0x5a}, 40)...),
		"not gzip":  []byte("SQLite format 3\x00 this is no archive"),
	} {
		p := filepath.Join(dir, strings.ReplaceAll(name, " ", "-"))
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		target := filepath.Join(dir, "target-"+strings.ReplaceAll(name, " ", "-"))
		code, _, errOut := runCmd([]string{"restore", p, "--data", target}, "")
		if code != 1 {
			t.Errorf("%s archive: exit %d: %s", name, code, errOut)
		}
		entries, _ := os.ReadDir(target)
		for _, e := range entries {
			if e.Name() != db.LockFile {
				t.Errorf("%s archive: %s left in the target directory", name, e.Name())
			}
		}
	}
}
