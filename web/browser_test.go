package web_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/chromedp"

	"gatehouse/core"
	"gatehouse/core/coretest"
	"gatehouse/modules/wsapi/wstest"
)

// The demo's IT person ines.moreau (card FC 42 / CN 1009) may pass every door at any time; the
// other card is known to nobody.
const (
	inesCard    = "95:01:f8:80"
	unknownCard = "de:ad:be:ef"
)

// chromium returns the browser to drive: $GATEHOUSE_CHROMIUM or Debian's /usr/bin/chromium.
// A missing browser fails the test: the dashboard is not tested without one.
func chromium(t *testing.T) string {
	t.Helper()
	for _, p := range []string{os.Getenv("GATEHOUSE_CHROMIUM"), "/usr/bin/chromium", "/usr/bin/chromium-browser"} {
		if p == "" {
			continue
		}
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if p, err := exec.LookPath("chromium"); err == nil {
		return p
	}
	t.Fatal("no Chromium found at /usr/bin/chromium: install chromium: apt-get install -y chromium")
	return ""
}

// artifactsDir is where screenshots go: $GATEHOUSE_ARTIFACTS or web/testdata/artifacts.
func artifactsDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("GATEHOUSE_ARTIFACTS")
	if dir == "" {
		dir = filepath.Join("testdata", "artifacts")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("artifacts dir: %v", err)
	}
	return dir
}

// proxy is a TCP relay between the browser and the server that the test can cut (every
// connection dropped, new ones refused) and restore, to take the network away from the page.
type proxy struct {
	URL   string
	ln    net.Listener
	to    string
	mu    sync.Mutex
	down  bool
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

func startProxy(t *testing.T, to string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("proxy listen: %v", err)
	}
	p := &proxy{URL: "http://" + ln.Addr().String(), ln: ln, to: to, conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(func() {
		_ = ln.Close()
		p.cut()
		p.wg.Wait()
	})
	return p
}

func (p *proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		down, to := p.down, p.to
		p.mu.Unlock()
		if down {
			_ = c.Close()
			continue
		}
		up, err := net.Dial("tcp", to)
		if err != nil {
			_ = c.Close()
			continue
		}
		if !p.track(c, up) {
			continue
		}
		p.wg.Add(2)
		go p.pipe(c, up)
		go p.pipe(up, c)
	}
}

// track registers a relayed pair; it refuses it when the proxy was cut meanwhile.
func (p *proxy) track(a, b net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.down {
		_ = a.Close()
		_ = b.Close()
		return false
	}
	p.conns[a], p.conns[b] = struct{}{}, struct{}{}
	return true
}

func (p *proxy) pipe(dst, src net.Conn) {
	defer p.wg.Done()
	_, _ = io.Copy(dst, src)
	_ = dst.Close()
	_ = src.Close()
	p.mu.Lock()
	delete(p.conns, dst)
	delete(p.conns, src)
	p.mu.Unlock()
}

// cut drops every relayed connection and refuses new ones until restore.
func (p *proxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = true
	for c := range p.conns {
		_ = c.Close()
	}
}

// restore accepts connections again, relaying them to addr (the server may have moved).
func (p *proxy) restore(addr string) {
	p.mu.Lock()
	p.down, p.to = false, addr
	p.mu.Unlock()
}

// tab is one browser tab and what its console said.
type tab struct {
	t   *testing.T
	ctx context.Context

	mu      sync.Mutex
	console []chromedp.ConsoleMessage
}

// newBrowser starts Chromium headless with a temporary profile; it ends with the test. A
// Chromium that exits while starting (seen once in many runs on a loaded machine) is started
// again, up to three times, each with a fresh profile; the test fails if none starts.
func newBrowser(t *testing.T) context.Context {
	t.Helper()
	path := chromium(t)
	var errs []error
	for range 3 {
		opts := []chromedp.ExecAllocatorOption{
			chromedp.ExecPath(path),
			chromedp.Headless,
			chromedp.NoSandbox,
			chromedp.DisableGPU,
			chromedp.NoFirstRun,
			chromedp.NoDefaultBrowserCheck,
			chromedp.UserDataDir(t.TempDir()),
			chromedp.WindowSize(1280, 900),
			chromedp.Flag("disable-quic", true),
			chromedp.Flag("disable-background-networking", true),
			chromedp.Flag("disable-component-update", true),
			chromedp.Flag("disable-sync", true),
			chromedp.Flag("disable-dev-shm-usage", true),
			chromedp.Flag("disable-extensions", true),
			chromedp.Flag("disable-default-apps", true),
			chromedp.Flag("password-store", "basic"),
		}
		actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
		bctx, cancel := chromedp.NewContext(actx)
		if err := chromedp.Do(bctx); err != nil {
			cancel()
			cancelAlloc()
			errs = append(errs, err)
			continue
		}
		t.Cleanup(func() { cancel(); cancelAlloc() })
		return bctx
	}
	t.Fatalf("start chromium: %v (install chromium: apt-get install -y chromium)", errors.Join(errs...))
	return nil
}

// newTab opens a tab of the browser and records its console. The first tab of a browser
// context is the one Do opened.
func newTab(t *testing.T, bctx context.Context, first bool) *tab {
	t.Helper()
	ctx := bctx
	if !first {
		var cancel context.CancelFunc
		ctx, cancel = chromedp.NewContext(bctx)
		t.Cleanup(cancel)
	}
	tb := &tab{t: t, ctx: ctx}
	msgs := chromedp.Console(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for m, err := range msgs {
			if err != nil {
				return
			}
			tb.mu.Lock()
			tb.console = append(tb.console, m)
			tb.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		if !first {
			_ = chromedp.Cancel(ctx)
		}
		select {
		case <-done:
		case <-time.After(5 * time.Second):
		}
	})
	return tb
}

// mark returns the number of console messages so far, for errorsSince.
func (b *tab) mark() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.console)
}

// errorsSince returns the console errors and uncaught exceptions after mark.
func (b *tab) errorsSince(mark int) []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []string
	for _, m := range b.console[mark:] {
		if m.Type == chromedp.ConsoleError || m.Type == chromedp.ConsoleException {
			out = append(out, fmt.Sprintf("%s (%s:%d)", m, m.URL, m.Line+1))
		}
	}
	return out
}

func (b *tab) fatalf(format string, args ...any) {
	b.t.Helper()
	if errs := b.errorsSince(0); len(errs) > 0 {
		b.t.Logf("browser console errors so far:\n  %s", strings.Join(errs, "\n  "))
	}
	b.t.Fatalf(format, args...)
}

// do runs actions with a 60 s limit (a bound for a loaded machine).
func (b *tab) do(actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 60*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		b.fatalf("browser: %v", err)
	}
}

// wait polls a JavaScript expression until it is truthy. The bound (60 s) is for a machine
// under heavy load: an outcome that never comes fails, a slow one does not. On failure the
// page's route, feed and text are reported.
func (b *tab) wait(what, expr string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 65*time.Second)
	defer cancel()
	if _, err := chromedp.Run(ctx, chromedp.Poll[chromedp.Void](expr, chromedp.WithPollingTimeout(60*time.Second))); err != nil {
		sctx, scancel := context.WithTimeout(b.ctx, 10*time.Second)
		defer scancel()
		state, _ := chromedp.Run(sctx, chromedp.Evaluate[string](`location.hash + " | feed: " + [...document.querySelectorAll("[data-testid=feed-item]")].slice(0, 8).map(e => e.dataset.seq + ":" + e.dataset.kind).join(",") + " | text: " + document.body.innerText.slice(0, 600)`))
		b.fatalf("waiting for %s (%s): %v\npage: %s", what, expr, err, state)
	}
}

// click clicks the element sel names. A live page may re-render it between the query and the
// click ("Could not find node with given id"): the click is then tried again on the new node,
// up to five times.
func (b *tab) click(sel string) {
	b.t.Helper()
	var err error
	for range 5 {
		ctx, cancel := context.WithTimeout(b.ctx, 60*time.Second)
		err = chromedp.Do(ctx, chromedp.Click(chromedp.CSS(sel)))
		cancel()
		if err == nil || !strings.Contains(err.Error(), "Could not find node") {
			break
		}
	}
	if err != nil {
		b.fatalf("browser: click %s: %v", sel, err)
	}
}

// eval evaluates a JavaScript expression and decodes its JSON value into T.
func eval[T any](b *tab, expr string) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 60*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		b.fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// js quotes a Go string as a JavaScript string literal.
func js(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// setField sets an input or select and fires its input and change events.
func (b *tab) setField(sel, value string) {
	b.t.Helper()
	eval[chromedp.Void](b, fmt.Sprintf(`(() => { const el = document.querySelector(%s); el.value = %s;
		el.dispatchEvent(new Event("input", {bubbles: true})); el.dispatchEvent(new Event("change", {bubbles: true})); })()`, js(sel), js(value)))
}

// login fills the login form and submits it.
func (b *tab) login(username, password string) {
	b.t.Helper()
	b.wait("the login form", `document.querySelector("[data-testid=login-username]")`)
	b.setField("[data-testid=login-username]", username)
	b.setField("[data-testid=login-password]", password)
	b.click("[data-testid=login-submit]")
}

// feedSeqs returns the seqs of the feed's items, in page order.
func (b *tab) feedSeqs() []int64 {
	b.t.Helper()
	return eval[[]int64](b, `[...document.querySelectorAll("[data-testid=feed-item][data-seq]")].map(e => Number(e.dataset.seq))`)
}

// swipe presents a card at a door through the admin's connection; it returns the decision.
func swipe(t *testing.T, admin *wstest.Client, doorID int64, card string) (granted bool, reason string, seq int64) {
	t.Helper()
	r := admin.Call("reader.simulate", map[string]any{"door_id": doorID, "card_id": card, "nb_bits": 26})
	var res struct {
		Granted bool   `json:"granted"`
		Reason  string `json:"reason"`
		Seq     int64  `json:"seq"`
	}
	r.Decode(t, &res)
	if r.StatusCode != 0 || res.Seq == 0 {
		t.Fatalf("reader.simulate: %d %s %s", r.StatusCode, r.StatusString, r.Content)
	}
	return res.Granted, res.Reason, res.Seq
}

// auditEntry is what the tests read of an audit.get entry.
type auditEntry struct {
	ID         int64 `json:"id"`
	Attributes struct {
		Description string          `json:"description"`
		Topic       string          `json:"topic"`
		Data        json.RawMessage `json:"data"`
	} `json:"attributes"`
}

// audit reads every entry of an audit.get filter from the server.
func audit(t *testing.T, admin *wstest.Client, filter map[string]any) []auditEntry {
	t.Helper()
	var all []auditEntry
	for p := 1; ; p++ {
		q := map[string]any{"p": p, "ps": 500}
		for k, v := range filter {
			q[k] = v
		}
		r := admin.Call("audit.get", q)
		var res struct {
			Meta struct {
				TotalPage int `json:"total_page"`
			} `json:"meta"`
			Data []auditEntry `json:"data"`
		}
		r.Decode(t, &res)
		if r.StatusCode != 0 {
			t.Fatalf("audit.get: %d %s", r.StatusCode, r.StatusString)
		}
		all = append(all, res.Data...)
		if p >= res.Meta.TotalPage {
			return all
		}
	}
}

// TestDashboard drives the dashboard in a real Chromium against a real server running the demo
// site (its simulated traffic paused, so the events are the test's), through a proxy the test
// can cut.
func TestDashboard(t *testing.T) {
	srv := coretest.Start(t,
		coretest.WithConfig(func(c *core.Config) { c.Demo = true }),
		coretest.WithModuleConfig("demo", `{"interval": "2h"}`),
		coretest.WithModuleConfig("doorman", `{"strike_duration": "1500ms"}`))
	px := startProxy(t, strings.TrimPrefix(srv.HTTPURL, "http://"))
	admin := wstest.Dial(t, srv.WSURL)
	admin.UseGatehouseTypes() // reads the log as the dashboard does: access decisions included
	admin.Login("admin", coretest.AdminPassword)

	var state struct {
		Doors []struct {
			DoorID int64  `json:"door_id"`
			Door   string `json:"door"`
		} `json:"doors"`
	}
	admin.Call("door.state", map[string]any{"door_id": 0}).Decode(t, &state)
	doors := map[string]int64{}
	for _, d := range state.Doors {
		doors[d.Door] = d.DoorID
	}
	if len(doors) != 6 || doors["Lab"] == 0 || doors["Lobby"] == 0 {
		t.Fatalf("demo doors: %v", doors)
	}

	bctx := newBrowser(t)
	page := newTab(t, bctx, true)
	outer := t

	t.Run("login", func(t *testing.T) {
		page.t = t
		page.do(chromedp.Navigate(px.URL + "/"))
		page.login("admin", "not-the-password")
		page.wait("the refusal", `(() => { const m = document.querySelector("[data-testid=login-error]"); return m && !m.hidden && m.textContent.includes("Wrong username or password"); })()`)
		page.login("admin", coretest.AdminPassword)
		page.wait("the shell", `document.querySelector("[data-testid=whoami]")?.textContent === "admin · administrator"`)
		page.wait("the live view", `location.hash === "#/live" && document.querySelectorAll("[data-testid=door-tile]").length === 6`)
		if tok := eval[string](page, `sessionStorage.getItem("gatehouse.token") || ""`); len(tok) != 36 {
			t.Fatalf("token kept in sessionStorage: %q", tok)
		}
		// The device token of the login is kept per username, for the next login of this user.
		if dev := eval[string](page, `localStorage.getItem("gatehouse.device.admin") || ""`); !strings.HasPrefix(dev, "gd1.") {
			t.Fatalf("device token kept in localStorage: %q", dev)
		}
		// A reload logs in again with the kept token.
		page.do(chromedp.Reload())
		page.wait("the shell after a reload", `document.querySelector("[data-testid=whoami]")?.textContent === "admin · administrator"`)
		page.wait("the door tiles", `document.querySelectorAll("[data-testid=door-tile]").length === 6`)
	})

	t.Run("live events", func(t *testing.T) {
		page.t = t
		_, _, g := swipe(t, admin, doors["Lab"], inesCard)
		granted, reason, d := swipe(t, admin, doors["Lobby"], unknownCard)
		if granted || reason != "unknown_credential" {
			t.Fatalf("unknown card: granted %v reason %s", granted, reason)
		}
		item := func(seq int64) string {
			return fmt.Sprintf(`document.querySelector('[data-testid=feed-item][data-seq="%d"]')`, seq)
		}
		page.wait("the grant in the feed", item(g)+`?.dataset.kind === "granted" && `+item(g)+`.textContent.includes("ines.moreau") && `+item(g)+`.textContent.includes("Lab")`)
		page.wait("the denial in the feed", item(d)+`?.dataset.kind === "denied" && `+item(d)+`.textContent.includes("unknown credential") && `+item(d)+`.textContent.includes("Lobby")`)

		// Filters: by kind, by person, by door.
		page.setField("[data-testid=filter-kind]", "denied")
		page.wait("only denials", item(d)+` && !`+item(g)+` && [...document.querySelectorAll("[data-testid=feed-item][data-seq]")].every(e => e.dataset.kind === "denied")`)
		page.setField("[data-testid=filter-kind]", "")
		page.setField("[data-testid=filter-person]", "ines")
		page.wait("only ines", item(g)+` && !`+item(d))
		page.setField("[data-testid=filter-person]", "")
		page.setField("[data-testid=filter-door]", strconv.FormatInt(doors["Lobby"], 10))
		page.wait("only the Lobby", item(d)+` && !`+item(g))
		page.setField("[data-testid=filter-door]", "")
		page.wait("both again", item(d)+` && `+item(g))

		page.wait("the chart", `Number(document.querySelector("[data-testid=chart]").dataset.granted) >= 1 && Number(document.querySelector("[data-testid=chart]").dataset.denied) >= 1`)

		png, err := chromedp.Run(page.ctx, chromedp.CaptureScreenshot())
		if err != nil {
			t.Fatalf("screenshot: %v", err)
		}
		out := filepath.Join(artifactsDir(t), "live.png")
		if err := os.WriteFile(out, png, 0o644); err != nil {
			t.Fatalf("write screenshot: %v", err)
		}
		t.Logf("screenshot of the live view: %s", out)
	})

	t.Run("open a door from its tile", func(t *testing.T) {
		page.t = t
		tile := fmt.Sprintf(`[data-testid=door-tile][data-door-id="%d"]`, doors["Lobby"])
		page.wait("the Lobby locked", fmt.Sprintf(`document.querySelector(%s)?.dataset.locked === "true"`, js(tile)))
		page.click(tile + " [data-testid=door-open]")
		page.wait("the Lobby released", fmt.Sprintf(`document.querySelector(%s).dataset.locked === "false" && document.querySelector(%s).textContent.includes("Released")`, js(tile), js(tile)))
		page.wait("the success toast", `[...document.querySelectorAll("[data-testid=toast-ok]")].some(e => e.textContent.includes("Lobby: opened"))`)
		// The strike relocks after strike_duration, and the tile follows.
		page.wait("the Lobby locked again", fmt.Sprintf(`document.querySelector(%s).dataset.locked === "true"`, js(tile)))
	})

	t.Run("lockdown", func(t *testing.T) {
		page.t = t
		page.click("[data-testid=site-lockdown]")
		page.wait("the confirmation", `document.querySelector("[data-testid=confirm-dialog]")?.open`)
		page.click("[data-testid=confirm-cancel]")
		page.wait("the dialog closed", `!document.querySelector("[data-testid=confirm-dialog]")`)
		if mode := eval[string](page, `document.querySelector("[data-testid=site-mode]").dataset.mode`); mode != "normal" {
			t.Fatalf("site mode after cancel: %q", mode)
		}
		page.click("[data-testid=site-lockdown]")
		page.wait("the confirmation", `document.querySelector("[data-testid=confirm-dialog]")?.open`)
		page.click("[data-testid=confirm-ok]")
		page.wait("lockdown shown", `document.querySelector("[data-testid=site-mode]").dataset.mode === "lockdown"`)
		page.wait("the site.mode event", `[...document.querySelectorAll("[data-testid=feed-item][data-topic='site.mode']")].some(e => e.classList.contains("alarm") && e.textContent.includes("lockdown"))`)

		granted, reason, seq := swipe(t, admin, doors["Lab"], inesCard)
		if granted || reason != "lockdown" {
			t.Fatalf("swipe in lockdown: granted %v reason %s", granted, reason)
		}
		sel := fmt.Sprintf(`document.querySelector('[data-testid=feed-item][data-seq="%d"]')`, seq)
		page.wait("the lockdown denial", sel+`?.dataset.kind === "denied" && `+sel+`.textContent.includes("site in lockdown")`)

		page.click("[data-testid=site-normal]")
		page.click("[data-testid=confirm-ok]")
		page.wait("back to normal", `document.querySelector("[data-testid=site-mode]").dataset.mode === "normal"`)
	})

	t.Run("audit filter and CSV export", func(t *testing.T) {
		page.t = t
		dir := t.TempDir()
		if _, err := chromedp.CallBrowser(page.ctx, browser.SetDownloadBehavior, browser.SetDownloadBehaviorParams{
			Behavior: browser.SetDownloadBehaviorBehaviorAllow, DownloadPath: dir}); err != nil {
			t.Fatalf("download behaviour: %v", err)
		}
		page.do(chromedp.Evaluate[chromedp.Void](`location.hash = "#/audit"`))
		page.wait("the audit table", `document.querySelector("[data-testid=audit-table]")`)

		want := func(entries []auditEntry) string {
			ids := make([]string, len(entries))
			for i, e := range entries {
				ids[i] = strconv.FormatInt(e.ID, 10)
			}
			return "[" + strings.Join(ids, ",") + "]"
		}
		rows := `JSON.stringify([...document.querySelectorAll("[data-testid=audit-row]")].map(r => Number(r.dataset.seq)))`

		denied := audit(t, admin, map[string]any{"mask": int64(1) << 31})
		if len(denied) < 2 {
			t.Fatalf("denials in the log: %d", len(denied))
		}
		page.setField("[data-testid=audit-kind]", "denied")
		page.click("[data-testid=audit-apply]")
		page.wait("the denials", rows+` === `+js(want(denied)))

		labDenied := audit(t, admin, map[string]any{"mask": int64(1) << 31, "door_id": doors["Lab"]})
		if len(labDenied) != 1 {
			t.Fatalf("denials at the Lab: %d", len(labDenied))
		}
		page.setField("[data-testid=audit-door]", strconv.FormatInt(doors["Lab"], 10))
		page.click("[data-testid=audit-apply]")
		page.wait("the Lab's denial", rows+` === `+js(want(labDenied)))

		page.click("[data-testid=audit-export]")
		var file string
		coretest.Eventually(t, 60*time.Second, func() error {
			m, _ := filepath.Glob(filepath.Join(dir, "gatehouse-audit-*.csv"))
			if len(m) != 1 {
				return fmt.Errorf("downloads: %v", m)
			}
			file = m[0]
			return nil
		})
		raw, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		recs, err := csv.NewReader(bytes.NewReader(raw)).ReadAll()
		if err != nil {
			t.Fatalf("CSV %q: %v", raw, err)
		}
		header := []string{"seq", "time", "kind", "topic", "description", "author_id", "user_id", "door_id", "data"}
		if len(recs) != 2 || !slices.Equal(recs[0], header) {
			t.Fatalf("CSV = %q, want the header and one row", recs)
		}
		e, row := labDenied[0], recs[1]
		var data struct {
			Reason string `json:"reason"`
			CardID string `json:"card_id"`
		}
		if err := json.Unmarshal([]byte(row[8]), &data); err != nil {
			t.Fatalf("data column %q: %v", row[8], err)
		}
		if row[0] != strconv.FormatInt(e.ID, 10) || row[2] != "audit-auth-event" || row[3] != "access.denied" ||
			row[4] != e.Attributes.Description || row[7] != strconv.FormatInt(doors["Lab"], 10) ||
			data.Reason != "lockdown" || data.CardID != inesCard {
			t.Fatalf("CSV row %q, want entry %d %q", row, e.ID, e.Attributes.Description)
		}
		if !strings.Contains(e.Attributes.Description, `"Lab"`) || !strings.Contains(string(raw), `""Lab""`) {
			t.Fatalf("the description's quotes must be doubled in the CSV: %q", raw)
		}
	})

	t.Run("every page loads without errors", func(t *testing.T) {
		page.t = t
		mark := page.mark()
		links := eval[[]string](page, `[...document.querySelectorAll("nav a[data-page]")].map(a => a.getAttribute("href"))`)
		for _, want := range []string{"#/live", "#/audit", "#/account"} {
			if !slices.Contains(links, want) {
				t.Fatalf("nav %v lacks %s", links, want)
			}
		}
		t.Logf("pages: %v", links)
		for _, href := range links {
			id := strings.TrimPrefix(href, "#/")
			page.do(chromedp.Evaluate[chromedp.Void](`location.hash = ` + js(href)))
			page.wait("page "+id, fmt.Sprintf(`document.querySelector("#main")?.dataset.page === %s && document.querySelector("#main").children.length > 0`, js(id)))
			page.do(chromedp.Sleep(400 * time.Millisecond)) // let its calls answer
			if errs := page.errorsSince(mark); len(errs) > 0 {
				t.Fatalf("page %s: console errors:\n  %s", href, strings.Join(errs, "\n  "))
			}
			if png, err := chromedp.Run(page.ctx, chromedp.CaptureScreenshot()); err == nil {
				_ = os.WriteFile(filepath.Join(artifactsDir(t), "page-"+id+".png"), png, 0o644)
			}
			if toasts := eval[[]string](page, `[...document.querySelectorAll("[data-testid=toast-error]")].map(e => e.textContent)`); len(toasts) > 0 {
				t.Fatalf("page %s shows errors: %q", href, toasts)
			}
			if eval[bool](page, `document.querySelectorAll(".field input:not([id]), .field select:not([id])").length > 0`) {
				t.Errorf("page %s has inputs without an id for their label", href)
			}
		}
		// Phone-sized: nothing wider than the screen on the live view.
		page.do(chromedp.EmulateViewport(380, 800), chromedp.Evaluate[chromedp.Void](`location.hash = "#/live"`))
		page.wait("the live view on a phone", `document.querySelectorAll("[data-testid=door-tile]").length === 6`)
		if w := eval[[]int](page, `[document.documentElement.scrollWidth, window.innerWidth]`); w[0] > w[1] {
			t.Errorf("the live view is %d px wide on a %d px screen", w[0], w[1])
		}
		png, err := chromedp.Run(page.ctx, chromedp.CaptureScreenshot())
		if err == nil {
			_ = os.WriteFile(filepath.Join(artifactsDir(t), "live-phone.png"), png, 0o644)
		}
		page.do(chromedp.EmulateViewport(1280, 900))
		if errs := page.errorsSince(mark); len(errs) > 0 {
			t.Fatalf("console errors:\n  %s", strings.Join(errs, "\n  "))
		}
	})

	t.Run("a viewer sees no controls and is sent back on session_closed", func(t *testing.T) {
		r := admin.Call("user.create", map[string]any{"attributes": map[string]any{
			"username": "vera", "password": "vera-password-1", "firstname": "Vera", "lastname": "Viewer", "rank": 1}})
		if r.StatusCode != 0 {
			t.Fatalf("user.create: %d %s %s", r.StatusCode, r.StatusString, r.Content)
		}
		var created struct {
			Data struct {
				ID int64 `json:"id"`
			} `json:"data"`
		}
		r.Decode(t, &created)
		vt := newTab(t, bctx, false)
		vt.do(chromedp.Navigate(px.URL + "/#/live"))
		vt.login("vera", "vera-password-1")
		vt.wait("the viewer's shell", `document.querySelector("[data-testid=whoami]")?.textContent === "vera · viewer"`)
		vt.wait("the door tiles", `document.querySelectorAll("[data-testid=door-tile]").length === 6`)
		vt.do(chromedp.Sleep(300 * time.Millisecond))
		if n := eval[int](vt, `document.querySelectorAll("[data-testid=door-open], [data-testid=door-mode-set], [data-testid=site-lockdown], [data-testid=site-evacuation], [data-testid=site-normal]").length`); n != 0 {
			t.Fatalf("a viewer is shown %d controls", n)
		}
		if !eval[bool](vt, `!!document.querySelector("[data-testid=nav-audit]")`) {
			t.Fatal("a viewer may read the audit trail: the link is missing")
		}
		// The administrator sets vera's password: her session ends, the page says why.
		pc := admin.Call("password_change", map[string]any{"user_id": created.Data.ID, "new_password": "vera-password-2"})
		if pc.StatusCode != 0 {
			t.Fatalf("password_change: %d %s", pc.StatusCode, pc.StatusString)
		}
		vt.wait("the login page with the reason", `(() => { const m = document.querySelector("[data-testid=login-error]"); return m && !m.hidden && m.textContent.includes("Password changed"); })()`)

		// Throttled logins get a clear message.
		for i := 0; ; i++ {
			vt.login("nobody", "wrong-password")
			vt.wait("an answer", `(() => { const m = document.querySelector("[data-testid=login-error]"); return m && !m.hidden && !document.querySelector("[data-testid=login-submit]").disabled; })()`)
			msg := eval[string](vt, `document.querySelector("[data-testid=login-error]").textContent`)
			if strings.Contains(msg, "Too many failed attempts") {
				break
			}
			if !strings.Contains(msg, "Wrong username or password") || i == 10 {
				t.Fatalf("attempt %d: %q", i+1, msg)
			}
		}

		// A disabled account is told so, not "wrong password".
		if r := admin.Call("user.create", map[string]any{"attributes": map[string]any{
			"username": "dora", "password": "dora-password-1", "rank": 1, "validity-enabled": false}}); r.StatusCode != 0 {
			t.Fatalf("user.create: %d %s %s", r.StatusCode, r.StatusString, r.Content)
		}
		vt.login("dora", "dora-password-1")
		vt.wait("an answer", `(() => { const m = document.querySelector("[data-testid=login-error]"); return m && !m.hidden && !document.querySelector("[data-testid=login-submit]").disabled; })()`)
		if msg := eval[string](vt, `document.querySelector("[data-testid=login-error]").textContent`); !strings.Contains(msg, "disabled") {
			t.Fatalf("disabled account login: %q", msg)
		}

		// A user (rank 0) sees the live feed (of their own events) and their account only.
		if r := admin.Call("user.create", map[string]any{"attributes": map[string]any{
			"username": "ulla", "password": "ulla-password-1", "firstname": "Ulla", "lastname": "User", "rank": 0}}); r.StatusCode != 0 {
			t.Fatalf("user.create: %d %s %s", r.StatusCode, r.StatusString, r.Content)
		}
		vt.login("ulla", "ulla-password-1")
		vt.wait("the user's shell", `document.querySelector("[data-testid=whoami]")?.textContent === "ulla · user"`)
		vt.wait("the live view", `document.querySelector("[data-testid=feed]")`)
		vt.do(chromedp.Sleep(300 * time.Millisecond))
		if n := eval[int](vt, `document.querySelectorAll("[data-testid=door-tile], [data-testid=door-open], [data-testid=site-lockdown], [data-testid=nav-audit]").length`); n != 0 {
			t.Fatalf("a user is shown %d viewer or manager elements", n)
		}
		if !eval[bool](vt, `!!document.querySelector("[data-testid=nav-account]")`) {
			t.Fatal("a user's account link is missing")
		}
		if errs := vt.errorsSince(0); len(errs) > 0 {
			t.Fatalf("console errors:\n  %s", strings.Join(errs, "\n  "))
		}
	})

	t.Run("reconnect without a gap or a duplicate", func(t *testing.T) {
		page.t = t
		page.do(chromedp.Evaluate[chromedp.Void](`location.hash = "#/live"`))
		page.wait("the live view", `document.querySelectorAll("[data-testid=door-tile]").length === 6 && document.querySelector("[data-testid=feed-item][data-seq]")`)
		before := slices.Max(page.feedSeqs())

		px.cut()
		page.wait("the connection-lost banner", `document.querySelector("[data-testid=conn-banner]")?.dataset.state === "down"`)
		// A call while the connection is down fails with a clear message.
		page.click(fmt.Sprintf(`[data-testid=door-tile][data-door-id="%d"] [data-testid=door-open]`, doors["Lab"]))
		page.wait("the error toast", `[...document.querySelectorAll("[data-testid=toast-error]")].some(e => e.textContent.includes("Not connected"))`)

		var missed []int64
		for i := range 5 {
			card := inesCard
			if i%2 == 1 {
				card = unknownCard
			}
			_, _, seq := swipe(t, admin, doors["Warehouse"], card)
			missed = append(missed, seq)
		}
		px.restore(strings.TrimPrefix(srv.HTTPURL, "http://"))
		page.wait("the reconnected notice", `document.querySelector("[data-testid=conn-banner]")?.dataset.state === "ok" && !document.querySelector("[data-testid=feed-notice]").hidden && document.querySelector("[data-testid=feed-notice]").textContent.includes("Reconnected")`)
		for _, seq := range missed {
			page.wait(fmt.Sprintf("event %d", seq), fmt.Sprintf(`document.querySelector('[data-testid=feed-item][data-seq="%d"]')`, seq))
		}
		_, _, after := swipe(t, admin, doors["Warehouse"], inesCard)
		page.wait("a live event after the reconnection", fmt.Sprintf(`document.querySelector('[data-testid=feed-item][data-seq="%d"]')`, after))

		// Every access and door event since before the cut is shown exactly once.
		var want []int64
		for _, e := range audit(t, admin, map[string]any{"enabled_type": []string{"audit-auth-event", "audit-door-event"}}) {
			if e.ID > before {
				want = append(want, e.ID)
			}
		}
		got := map[int64]int{}
		for _, s := range page.feedSeqs() {
			got[s]++
		}
		for s, n := range got {
			if n != 1 {
				t.Errorf("event %d shown %d times", s, n)
			}
		}
		for _, s := range want {
			if got[s] != 1 {
				t.Errorf("event %d (in the log) not in the feed", s)
			}
		}
		if len(want) < 6 {
			t.Errorf("expected the 6 swipes in the log, got %v", want)
		}

		// The server restarts (on another port) while the page is cut off, and events happen
		// before the page is back: the kept token and the since/epoch resume carry over.
		before = slices.Max(page.feedSeqs())
		px.cut()
		page.wait("the connection-lost banner", `document.querySelector("[data-testid=conn-banner]")?.dataset.state === "down"`)
		srv = srv.Restart()
		admin = wstest.Dial(outer, srv.WSURL) // lives as long as the server
		admin.UseGatehouseTypes()
		admin.Login("admin", coretest.AdminPassword)
		_, _, s1 := swipe(t, admin, doors["Main entrance"], inesCard)
		_, _, s2 := swipe(t, admin, doors["Main entrance"], unknownCard)
		px.restore(strings.TrimPrefix(srv.HTTPURL, "http://"))
		page.do(chromedp.Evaluate[chromedp.Void](`document.querySelector("[data-testid=conn-retry]")?.click()`))
		for _, seq := range []int64{s1, s2} {
			page.wait(fmt.Sprintf("event %d after the restart", seq), fmt.Sprintf(`document.querySelector('[data-testid=feed-item][data-seq="%d"]')`, seq))
		}
		page.wait("the reconnected notice", `document.querySelector("[data-testid=conn-banner]")?.dataset.state === "ok"`)
		if eval[bool](page, `document.querySelector("[data-testid=feed-notice]").textContent.includes("resync")`) {
			t.Error("a restart on the same database must not resync")
		}
		seqs := page.feedSeqs()
		for _, e := range audit(t, admin, map[string]any{"enabled_type": []string{"audit-auth-event", "audit-door-event"}}) {
			if e.ID > before && slices.Index(seqs, e.ID) < 0 {
				t.Errorf("event %d (in the log) not in the feed after the restart", e.ID)
			}
		}
		if len(seqs) != len(slices.Compact(slices.Sorted(slices.Values(seqs)))) {
			t.Errorf("duplicates in the feed after the restart: %v", seqs)
		}
	})

	// Last: changing the admin's password ends the admin client's session.
	t.Run("account: tokens and password", func(t *testing.T) {
		page.t = t
		other := wstest.Dial(t, srv.WSURL)
		other.Login("admin", coretest.AdminPassword)
		var toks []struct {
			ID      string `json:"id"`
			Current bool   `json:"current"`
		}
		other.Call("token.list", map[string]any{}).Decode(t, &toks)
		otherID := ""
		for _, tk := range toks {
			if tk.Current {
				otherID = tk.ID
			}
		}
		if otherID == "" {
			t.Fatalf("token.list: no current token in %+v", toks)
		}
		page.do(chromedp.Evaluate[chromedp.Void](`location.hash = "#/account"`))
		revoke := fmt.Sprintf(`[data-testid=token-revoke][data-token-id=%s]`, js(otherID))
		page.wait("the tokens, this session marked", fmt.Sprintf(`document.querySelector(%s) && document.querySelector("[data-testid=tokens-table]").textContent.includes("this session")`, js(revoke)))
		page.click(revoke)
		page.click("[data-testid=confirm-ok]")
		page.wait("the revocation", fmt.Sprintf(`!document.querySelector(%s) && [...document.querySelectorAll("[data-testid=toast-ok]")].some(e => e.textContent.includes("Token revoked"))`, js(revoke)))
		other.ExpectPush("session_closed", 30*time.Second)

		// A wrong current password and a too short new one are shown next to their fields.
		page.setField("[data-testid=pw-current]", "wrong-password")
		page.setField("[data-testid=pw-new]", "new-admin-password")
		page.setField("[data-testid=pw-again]", "new-admin-password")
		page.click("[data-testid=pw-submit]")
		page.wait("the wrong current password", `document.querySelector("[data-testid=error-current_password]")?.textContent.includes("wrong")`)
		page.setField("[data-testid=pw-current]", coretest.AdminPassword)
		page.setField("[data-testid=pw-new]", "short")
		page.setField("[data-testid=pw-again]", "short")
		page.do(chromedp.Evaluate[chromedp.Void](`document.querySelector("[data-testid=pw-new]").removeAttribute("minlength")`))
		page.click("[data-testid=pw-submit]")
		page.wait("the too short password", `document.querySelector("[data-testid=error-new_password]")`)
		page.setField("[data-testid=pw-new]", "new-admin-password")
		page.setField("[data-testid=pw-again]", "new-admin-password")
		page.click("[data-testid=pw-submit]")
		page.wait("the success", `[...document.querySelectorAll("[data-testid=toast-ok]")].some(e => e.textContent.includes("Password changed"))`)
		admin.ExpectPush("session_closed", 30*time.Second)
		check := wstest.Dial(t, srv.WSURL)
		check.Login("admin", "new-admin-password")
	})
}
