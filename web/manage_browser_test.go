package web_test

import (
	"crypto/ed25519"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"gatehouse/core"
	"gatehouse/core/coretest"
	"gatehouse/modules/reader/wiegand"
	"gatehouse/modules/wsapi/wstest"
)

// This file tests the management pages (web/static/js/pages/manage) in a real Chromium against
// a real server, with the harness of browser_test.go (newBrowser, newTab, tab.do/wait/click,
// setField, login, eval).

// manageID returns the id of a created resource, failing the test on an error reply.
func manageID(t *testing.T, r wstest.Reply) int64 {
	t.Helper()
	if r.StatusCode != 0 {
		t.Fatalf("%s: %d %s %s", r.Type, r.StatusCode, r.StatusString, r.Content)
	}
	var v struct {
		Data struct {
			ID int64 `json:"id"`
		} `json:"data"`
	}
	r.Decode(t, &v)
	if v.Data.ID == 0 {
		t.Fatalf("%s: no id in %s", r.Type, r.Content)
	}
	return v.Data.ID
}

// wiegandVector is one frame as the Go decoder reads it.
type wiegandVector struct {
	Card      string `json:"card"`
	Bits      int    `json:"bits"`
	Format    string `json:"format"`
	Facility  uint32 `json:"facility"`
	Number    uint32 `json:"number"`
	BadParity bool   `json:"bad_parity"`
}

// wiegandVectors returns frames decoded by gatehouse/modules/reader/wiegand: for every known
// format valid frames (0, 1, the maxima, random values), each of them with every single bit
// flipped (parity errors, or not, as Go decides), random frames of the known lengths, and raw
// frames of other lengths.
func wiegandVectors(t *testing.T) []wiegandVector {
	t.Helper()
	rng := rand.New(rand.NewPCG(1, 2))
	var out []wiegandVector
	add := func(bits []bool) {
		f, err := wiegand.Decode(bits)
		if err != nil {
			t.Fatalf("decode %v: %v", bits, err)
		}
		out = append(out, wiegandVector{Card: f.Card, Bits: f.NBits(), Format: f.Format.String(),
			Facility: f.Facility, Number: f.Number, BadParity: f.BadParity})
	}
	for _, f := range wiegand.Formats() {
		values := [][2]uint32{{0, 0}, {1, 1}, {f.MaxFacility(), f.MaxNumber()}, {min(42, f.MaxFacility()), min(1001, f.MaxNumber())}}
		for range 6 {
			values = append(values, [2]uint32{rng.Uint32N(f.MaxFacility() + 1), rng.Uint32N(f.MaxNumber() + 1)})
		}
		for i, v := range values {
			bits, err := wiegand.Encode(f, v[0], v[1])
			if err != nil {
				t.Fatalf("encode %v %v: %v", f, v, err)
			}
			add(bits)
			if i < 3 {
				for k := range bits {
					flipped := slices.Clone(bits)
					flipped[k] = !flipped[k]
					add(flipped)
				}
			}
		}
		for range 20 {
			bits := make([]bool, f.Bits())
			for k := range bits {
				bits[k] = rng.IntN(2) == 1
			}
			add(bits)
		}
	}
	for _, n := range []int{1, 8, 25, 27, 32, 36, 40, 64, 100, 128} {
		bits := make([]bool, n)
		for k := range bits {
			bits[k] = rng.IntN(2) == 1
		}
		add(bits)
	}
	return out
}

// TestManagePages drives the management pages as an administrator and as a viewer.
func TestManagePages(t *testing.T) {
	srv := coretest.Start(t, coretest.WithConfig(func(c *core.Config) { c.Timezone = "UTC" }))
	admin := wstest.Dial(t, srv.WSURL)
	admin.Login("admin", coretest.AdminPassword)
	reader := manageID(t, admin.Call("access_point.create", map[string]any{"attributes": map[string]any{
		"alias": "Front reader", "controller-module": "simulator"}}))
	door := manageID(t, admin.Call("door.create", map[string]any{"attributes": map[string]any{
		"alias": "Front", "access_point_id": reader}}))
	vic := manageID(t, admin.Call("user.create", map[string]any{"attributes": map[string]any{
		"username": "vic", "password": "vic-password-1", "rank": 1}}))

	bctx := newBrowser(t)
	page := newTab(t, bctx, true)
	page.do(chromedp.Navigate(srv.HTTPURL + "/"))
	page.login("admin", coretest.AdminPassword)
	page.wait("the shell", `document.querySelector("[data-testid=whoami]")?.textContent === "admin · administrator"`)
	// shot saves a screenshot of the page to the artifacts directory.
	shot := func(b *tab, name string) {
		b.t.Helper()
		png, err := chromedp.Run(b.ctx, chromedp.CaptureScreenshot())
		if err != nil {
			b.t.Fatalf("screenshot: %v", err)
		}
		if err := os.WriteFile(filepath.Join(artifactsDir(b.t), name), png, 0o644); err != nil {
			b.t.Fatalf("write screenshot: %v", err)
		}
	}
	// goTo opens a route of the page and waits until the page module has rendered it.
	goTo := func(b *tab, hash, testid string) {
		b.t.Helper()
		b.do(chromedp.Evaluate[chromedp.Void](`location.hash = ` + js(hash)))
		b.wait(hash, fmt.Sprintf(`(() => { const v = document.querySelector("[data-testid=%s]"); return v && v.children.length > 0 && !v.querySelector(".loading"); })()`, testid))
	}

	t.Run("wiegand decoder agrees with the Go package", func(t *testing.T) {
		page.t = t
		vectors := wiegandVectors(t)
		raw, err := json.Marshal(vectors)
		if err != nil {
			t.Fatal(err)
		}
		mismatches := eval[[]string](page, `import("/js/pages/manage/wiegand.js").then((w) => {
			const bad = [];
			for (const v of `+string(raw)+`) {
				let d;
				try { d = w.decode(v.card, v.bits); } catch (e) { bad.push(v.card + "/" + v.bits + ": " + e.message); continue; }
				const known = v.format !== "raw";
				if (d.format !== v.format || d.badParity !== v.bad_parity || (known && (d.facility !== v.facility || d.number !== v.number))) {
					bad.push(v.card + "/" + v.bits + ": js " + JSON.stringify(d) + " go " + JSON.stringify(v));
				}
				if (known && !v.bad_parity) {
					const e = w.encode(v.format, v.facility, v.number);
					if (e.cardId !== v.card || e.nbBits !== v.bits) bad.push("encode " + JSON.stringify(v) + " = " + JSON.stringify(e));
				}
			}
			return bad;
		})`)
		if len(mismatches) > 0 {
			t.Fatalf("%d of %d vectors differ, e.g.:\n  %s", len(mismatches), len(vectors), strings.Join(mismatches[:min(10, len(mismatches))], "\n  "))
		}
		// Malformed card ids are refused, not misread.
		bad := eval[[]bool](page, `import("/js/pages/manage/wiegand.js").then((w) =>
			[["aa:bb", 26], ["zz:00:00:00", 26], ["95:01:f4:81", 26], ["95:01:f4:80", 0], ["95:01:f4:80", 129]].map(([c, n]) => w.checkCardId(c, n) !== ""))`)
		if slices.Contains(bad, false) {
			t.Fatalf("malformed card ids accepted: %v", bad)
		}
		t.Logf("%d vectors agree", len(vectors))
	})

	var alice int64
	t.Run("a person with a card and a schedule is granted at the door", func(t *testing.T) {
		page.t = t
		goTo(page, "#/people/new", "people-page")
		page.setField("[data-testid=person-username]", "alice")
		page.setField("[data-testid=person-firstname]", "Alice")
		page.setField("[data-testid=person-lastname]", "Martin")
		page.setField("[data-testid=person-email]", "alice@example.com")
		page.click("[data-testid=person-save]")
		page.wait("alice's page", `/^#\/people\/\d+$/.test(location.hash) && document.querySelector("h1")?.textContent === "alice"`)
		id, err := strconv.ParseInt(strings.TrimPrefix(eval[string](page, `location.hash`), "#/people/"), 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		alice = id
		page.wait("the success toast", `[...document.querySelectorAll("[data-testid=toast-ok]")].some(e => e.textContent.includes("Created alice"))`)

		// A card from its facility code and number: the form computes the raw card id.
		page.click("[data-testid=person-add-credential]")
		page.wait("the credential form", `document.querySelector("[data-testid=credential-form]") && document.querySelector("[data-testid=credential-owner_id]").value === `+js(strconv.FormatInt(alice, 10)))
		page.setField("[data-testid=credential-alias]", "alice-badge")
		page.setField("[data-testid=card-helper-format]", "H10301")
		page.setField("[data-testid=card-helper-facility]", "42")
		page.setField("[data-testid=card-helper-number]", "1001")
		page.click("[data-testid=card-helper-fill]")
		page.wait("the card id", `document.querySelector("[data-testid=credential-cardId]").value === "95:01:f4:80" && document.querySelector("[data-testid=credential-nbBits]").value === "26"`)
		page.wait("the decoded card", `document.querySelector("[data-testid=credential-decoded]").textContent === "H10301 · FC 42 · CN 1001"`)
		page.click("[data-testid=credential-save]")
		page.wait("the card on alice's page", `location.hash === "#/people/`+strconv.FormatInt(alice, 10)+`" && document.querySelector("[data-testid=person-credentials-table]")?.textContent.includes("95:01:f4:80 (26 bits) H10301 · FC 42 · CN 1001")`)

		// A schedule covering now (UTC, the site's zone) for alice at the Front door: today
		// all day, and an overnight frame from 23:00 today to 01:00 tomorrow.
		today := (int(time.Now().UTC().Weekday()) + 6) % 7
		goTo(page, "#/schedules/new", "schedules-page")
		page.setField("[data-testid=schedule-name]", "alice-now")
		page.click("[data-testid=tf-add]")
		page.setField("[data-testid=tf-0-day]", strconv.Itoa(today))
		page.setField("[data-testid=tf-0-start]", "00:00")
		page.setField("[data-testid=tf-0-end]", "23:59")
		page.click("[data-testid=tf-add]")
		page.setField("[data-testid=tf-1-day]", strconv.Itoa(today))
		page.setField("[data-testid=tf-1-start]", "23:00")
		page.setField("[data-testid=tf-1-end]", "01:00")
		days := []string{"Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"}
		page.wait("the overnight frame shown as such", `document.querySelector("[data-testid=tf-1-overnight]").textContent === `+js("Overnight: ends "+days[(today+1)%7]+" 01:00.")+
			` && document.querySelector("[data-testid=tf-0-overnight]").textContent === ""`)
		page.click("[data-testid=mapping-add]")
		page.setField("[data-testid=mapping-0-alias]", "alice at the front")
		page.setField("[data-testid=mapping-0-users-pick]", strconv.FormatInt(alice, 10))
		page.click("[data-testid=mapping-0-users-add]")
		page.setField("[data-testid=mapping-0-doors-pick]", strconv.FormatInt(door, 10))
		page.click("[data-testid=mapping-0-doors-add]")
		page.wait("the chosen person and door", fmt.Sprintf(`document.querySelector("[data-testid=mapping-0-users-item-%d]")?.textContent.includes("alice") && document.querySelector("[data-testid=mapping-0-doors-item-%d]")?.textContent.includes("Front")`, alice, door))
		shot(page, "manage-schedule-form.png")
		page.click("[data-testid=schedule-save]")
		page.wait("the schedule in the list", `location.hash === "#/schedules" && document.querySelector("[data-testid=schedules-table]")?.textContent.includes("alice-now")`)

		// What the server stored.
		var sched struct {
			Data []struct {
				Attributes struct {
					Name       string `json:"name"`
					Timeframes []struct {
						Day   int    `json:"day"`
						Start string `json:"start-time"`
						End   string `json:"end-time"`
					} `json:"timeframes"`
				} `json:"attributes"`
			} `json:"data"`
			Included []struct {
				Attributes struct {
					Alias string `json:"alias"`
				} `json:"attributes"`
				Relationships map[string]struct {
					Data []struct {
						ID int64 `json:"id"`
					} `json:"data"`
				} `json:"relationships"`
			} `json:"included"`
		}
		admin.Call("schedule.read", map[string]any{"schedule_id": 0}).Decode(t, &sched)
		if len(sched.Data) != 1 || len(sched.Included) != 1 {
			t.Fatalf("schedules: %+v", sched)
		}
		tf := sched.Data[0].Attributes.Timeframes
		if len(tf) != 2 || tf[0].Day != today || tf[0].Start != "00:00" || tf[0].End != "23:59" || tf[1].Day != today || tf[1].Start != "23:00" || tf[1].End != "01:00" {
			t.Fatalf("timeframes stored: %+v", tf)
		}
		m := sched.Included[0]
		if m.Attributes.Alias != "alice at the front" || len(m.Relationships["users"].Data) != 1 || m.Relationships["users"].Data[0].ID != alice ||
			len(m.Relationships["doors"].Data) != 1 || m.Relationships["doors"].Data[0].ID != door {
			t.Fatalf("mapping stored: %+v", m)
		}

		// Present the card at the door from the Readers page.
		goTo(page, "#/readers", "readers-page")
		page.setField("[data-testid=simulate-target]", "door:"+strconv.FormatInt(door, 10))
		page.setField("[data-testid=simulate-cardId]", "95:01:f4:80")
		page.setField("[data-testid=simulate-nbBits]", "26")
		page.click("[data-testid=simulate-submit]")
		page.wait("granted", `document.querySelector("[data-testid=simulate-result]").dataset.granted === "true" && document.querySelector("[data-testid=simulate-result]").textContent === "granted (granted)"`)
		shot(page, "manage-readers.png")
		// The next card of the facility (FC 42 / CN 1002) is unknown: the answer really is the server's.
		page.setField("[data-testid=simulate-cardId]", "95:01:f5:00")
		page.click("[data-testid=simulate-submit]")
		page.wait("denied", `document.querySelector("[data-testid=simulate-result]").dataset.granted === "false" && document.querySelector("[data-testid=simulate-result]").textContent === "denied: unknown_credential"`)

		// An administrator ends alice's validity: her card no longer opens the door.
		goTo(page, fmt.Sprintf("#/people/%d/edit", alice), "people-page")
		page.wait("alice's form", `document.querySelector("[data-testid=person-username]")?.value === "alice" && !document.querySelector("[data-testid=person-validity-end]").disabled`)
		page.setField("[data-testid=person-validity-end]", "2020-01-01T00:00")
		page.click("[data-testid=person-save]")
		page.wait("alice's page", `location.hash === "#/people/`+strconv.FormatInt(alice, 10)+`" && document.querySelector("[data-testid=person-validity]")?.textContent.startsWith("until ")`)
		var user struct {
			Data struct {
				Attributes map[string]any `json:"attributes"`
			} `json:"data"`
		}
		admin.Call("user.read", map[string]any{"user_id": alice}).Decode(t, &user)
		if end, _ := user.Data.Attributes["validity-end"].(string); !strings.HasPrefix(end, "2019-12-31T") && !strings.HasPrefix(end, "2020-01-01T") ||
			user.Data.Attributes["firstname"] != "Alice" || user.Data.Attributes["email"] != "alice@example.com" {
			t.Fatalf("alice after the edit: %v", user.Data.Attributes)
		}
		goTo(page, "#/readers", "readers-page")
		page.setField("[data-testid=simulate-target]", "door:"+strconv.FormatInt(door, 10))
		page.setField("[data-testid=simulate-cardId]", "95:01:f4:80")
		page.click("[data-testid=simulate-submit]")
		page.wait("denied: user_invalid", `document.querySelector("[data-testid=simulate-result]").textContent === "denied: user_invalid"`)

		// alice's page lists the schedule that applies to her, and where.
		goTo(page, "#/people/"+strconv.FormatInt(alice, 10), "people-page")
		page.wait("alice's schedule", `(() => { const t = document.querySelector("[data-testid=person-schedules-table]").textContent;
			return t.includes("alice-now") && t.includes("door Front") && t.includes("directly") && t.includes("(overnight)"); })()`)
		shot(page, "manage-person.png")
	})

	t.Run("a group with a member", func(t *testing.T) {
		page.t = t
		goTo(page, "#/groups/new", "groups-page")
		page.setField("[data-testid=group-name]", "Staff")
		page.setField("[data-testid=group-description]", "Everyone on the payroll")
		page.click("[data-testid=group-save]")
		page.wait("the group's page", `/^#\/groups\/\d+$/.test(location.hash) && document.querySelector("[data-testid=member-add-form]")`)
		page.setField("[data-testid=member-add-user_id]", strconv.FormatInt(alice, 10))
		page.setField("[data-testid=member-add-rank]", "1")
		page.click("[data-testid=member-add]")
		page.wait("alice a member", fmt.Sprintf(`document.querySelector("[data-testid=member-%d]")?.textContent.includes("alice") && document.querySelector("[data-testid=member-%d-rank]")?.value === "1"`, alice, alice))
		var user struct {
			Data struct {
				Relationships map[string]struct {
					Data []struct {
						ID int64 `json:"id"`
					} `json:"data"`
				} `json:"relationships"`
			} `json:"data"`
		}
		admin.Call("user.read", map[string]any{"user_id": alice}).Decode(t, &user)
		ms := user.Data.Relationships["memberships"].Data
		if len(ms) != 1 {
			t.Fatalf("alice's memberships: %+v", ms)
		}
		var m struct {
			Data struct {
				Attributes struct {
					Rank int `json:"rank"`
				} `json:"attributes"`
			} `json:"data"`
		}
		admin.Call("user-group-membership.read", map[string]any{"membership_id": ms[0].ID}).Decode(t, &m)
		if m.Data.Attributes.Rank != 1 {
			t.Fatalf("alice's rank in the group: %d, want 1 (operator)", m.Data.Attributes.Rank)
		}
		goTo(page, fmt.Sprintf("#/people/%d", alice), "people-page")
		page.wait("the group on alice's page", `document.querySelector("[data-testid=person-groups-table]").textContent.includes("Staff") && document.querySelector("[data-testid=person-groups-table]").textContent.includes("operator")`)
	})

	t.Run("the server's validation errors are shown next to their field", func(t *testing.T) {
		page.t = t
		// A username that is taken: only the server knows.
		goTo(page, "#/people/new", "people-page")
		page.setField("[data-testid=person-username]", "admin")
		page.click("[data-testid=person-save]")
		page.wait("the error under the username", `(() => {
			const input = document.querySelector("[data-testid=person-username]");
			const err = input.nextElementSibling;
			return err?.dataset.testid === "error-username" && err.textContent === "The username admin is already in use."
				&& input.getAttribute("aria-invalid") === "true" && input.getAttribute("aria-describedby") === err.id; })()`)
		if h := eval[string](page, `location.hash`); h != "#/people/new" {
			t.Fatalf("the form was left: %s", h)
		}
		// A card that is already registered: the server's pointer (data/attributes/cardId) lands
		// under the card id, not elsewhere.
		goTo(page, "#/credentials/new", "credentials-page")
		page.setField("[data-testid=credential-cardId]", "95:01:f4:80")
		page.setField("[data-testid=credential-nbBits]", "26")
		page.click("[data-testid=credential-save]")
		page.wait("the error under the card id", `(() => {
			const err = document.querySelector("[data-testid=credential-cardId]").nextElementSibling;
			return err?.dataset.testid === "error-cardId" && /already registered/.test(err.textContent)
				&& document.querySelectorAll(".field-error").length === 1; })()`)
		// Checked before sending: a card id too short for its bits never reaches the server.
		page.setField("[data-testid=credential-cardId]", "95:01")
		page.click("[data-testid=credential-save]")
		page.wait("the client-side error", `document.querySelector("[data-testid=error-cardId]")?.textContent === "Card id must have 4 bytes for 26 bits, not 2."`)
		var creds struct {
			Data []json.RawMessage `json:"data"`
		}
		admin.Call("credential.read", map[string]any{"credential_id": 0}).Decode(t, &creds)
		if len(creds.Data) != 1 {
			t.Fatalf("credentials after the refused forms: %d, want 1", len(creds.Data))
		}
	})

	// Pages and their detail routes, each with the testid of its container.
	routes := [][2]string{
		{"#/people", "people-page"}, {"#/groups", "groups-page"}, {"#/credentials", "credentials-page"},
		{"#/schedules", "schedules-page"}, {"#/doors", "doors-page"}, {"#/zones", "zones-page"}, {"#/readers", "readers-page"},
		{fmt.Sprintf("#/people/%d", alice), "people-page"}, {"#/groups/1", "groups-page"}, {"#/schedules/1", "schedules-page"}, {"#/credentials/1", "credentials-page"},
		{fmt.Sprintf("#/doors/%d", door), "doors-page"}, {fmt.Sprintf("#/readers/%d", reader), "readers-page"},
	}
	// Everyone may edit their own profile (README permission model): the viewer's own Edit
	// button is not counted.
	editControls := fmt.Sprintf(`document.querySelectorAll("[data-edit]:not([data-testid=person-edit-%d]), [data-testid=simulate-form]").length`, vic)
	// Text a page must never show: a value that was missing or not text.
	stray := `(document.querySelector("#main").innerText.match(/\b(null|undefined|NaN)\b|\[object Object\]/) || [""])[0]`
	enabledInputs := `[...document.querySelectorAll("#main form:not([role=search]) input, #main form:not([role=search]) select, #main form:not([role=search]) textarea")].filter(e => !e.matches(":disabled")).length`

	vt := newTab(t, bctx, false) // the viewer's tab (it lives as long as the test)
	t.Run("a viewer sees no edit controls", func(t *testing.T) {
		page.t = t
		// The administrator has them on the same pages (so the check below can fail).
		for _, r := range routes {
			goTo(page, r[0], r[1])
			if n := eval[int](page, editControls); n == 0 {
				t.Fatalf("the administrator has no edit control on %s", r[0])
			}
			if s := eval[string](page, stray); s != "" {
				t.Fatalf("%s shows %q", r[0], s)
			}
		}
		vt.t = t
		vt.do(chromedp.Navigate(srv.HTTPURL + "/"))
		vt.login("vic", "vic-password-1")
		vt.wait("the viewer's shell", `document.querySelector("[data-testid=whoami]")?.textContent === "vic · viewer"`)
		if nav := eval[[]string](vt, `[...document.querySelectorAll("nav a[data-page]")].map(a => a.dataset.page)`); slices.Contains(nav, "tokens") || slices.Contains(nav, "certificates") || !slices.Contains(nav, "people") {
			t.Fatalf("viewer's navigation: %v", nav)
		}
		for _, r := range routes {
			goTo(vt, r[0], r[1])
			if n := eval[int](vt, editControls); n != 0 {
				t.Fatalf("a viewer sees %d edit controls on %s: %s", n, r[0], eval[string](vt, `[...document.querySelectorAll("[data-edit]")].map(e => e.dataset.testid).join(" ")`))
			}
			if n := eval[int](vt, enabledInputs); n != 0 {
				t.Fatalf("a viewer has %d enabled inputs on %s", n, r[0])
			}
			if s := eval[string](vt, stray); s != "" {
				t.Fatalf("%s shows %q to a viewer", r[0], s)
			}
		}
		goTo(vt, "#/people", "people-page")
		if !eval[bool](vt, fmt.Sprintf(`document.querySelectorAll("[data-edit]").length === 1 && !!document.querySelector("[data-testid=person-edit-%d]")`, vic)) {
			t.Fatal("the viewer should be offered to edit their own profile, and nothing else")
		}
		// What the viewer reads is the real data.
		goTo(vt, fmt.Sprintf("#/people/%d", alice), "people-page")
		vt.wait("alice's card", `document.querySelector("[data-testid=person-credentials-table]").textContent.includes("H10301 · FC 42 · CN 1001")`)
	})

	t.Run("administrators revoke anyone's tokens and keys", func(t *testing.T) {
		page.t = t
		vt.t = t
		// vic registers a key of his own.
		pub, _, err := ed25519.GenerateKey(nil)
		if err != nil {
			t.Fatal(err)
		}
		der, err := x509.MarshalPKIXPublicKey(pub)
		if err != nil {
			t.Fatal(err)
		}
		vicWS := wstest.Dial(t, srv.WSURL)
		vicWS.Login("vic", "vic-password-1")
		if r := vicWS.Call("cert.register", map[string]any{"nickname": "vic-laptop", "email": "vic@example.com",
			"pub_key": base64.StdEncoding.EncodeToString(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))}); r.StatusCode != 0 {
			t.Fatalf("cert.register: %d %s %s", r.StatusCode, r.StatusString, r.Content)
		}

		// The token of vic's browser session, as the server lists it.
		var toks []struct {
			ID        string `json:"id"`
			Username  string `json:"username"`
			UserAgent string `json:"user_agent"`
		}
		admin.Call("token.list", map[string]any{}).Decode(t, &toks)
		browserToken := ""
		for _, tk := range toks {
			if tk.Username == "vic" && strings.Contains(tk.UserAgent, "Chrome") {
				browserToken = tk.ID
			}
		}
		if browserToken == "" {
			t.Fatalf("no browser token of vic in %+v", toks)
		}
		goTo(page, "#/tokens", "tokens-page")
		page.wait("vic's tokens", `document.querySelector("[data-testid=tokens-table]").textContent.includes("vic")`)
		page.click(fmt.Sprintf("[data-testid=token-revoke-%s]", browserToken))
		page.wait("the confirmation", `document.querySelector("[data-testid=confirm-dialog]")?.open`)
		page.click("[data-testid=confirm-ok]")
		page.wait("the success toast", `[...document.querySelectorAll("[data-testid=toast-ok]")].some(e => e.textContent.includes("Token revoked."))`)
		page.wait("the token gone from the list", fmt.Sprintf(`document.querySelector("[data-testid=tokens-table]") && !document.querySelector("[data-testid=token-revoke-%s]")`, browserToken))
		vt.wait("vic's dashboard back at the login page", `(() => { const m = document.querySelector("[data-testid=login-error]"); return m && !m.hidden && m.textContent.includes("revoked"); })()`)
		if r := vicWS.Call("whoami", map[string]any{}); r.StatusCode != 0 {
			t.Fatalf("vic's other session was ended too: %d %s", r.StatusCode, r.StatusString)
		}

		var certs []struct {
			ID       int64  `json:"id"`
			Nickname string `json:"nickname"`
		}
		admin.Call("cert.list", map[string]any{}).Decode(t, &certs)
		if len(certs) != 1 || certs[0].Nickname != "vic-laptop" {
			t.Fatalf("keys: %+v", certs)
		}
		goTo(page, "#/certificates", "certs-page")
		page.wait("vic's key", `(() => { const t = document.querySelector("[data-testid=certs-table]").textContent; return t.includes("vic") && t.includes("vic-laptop") && t.includes("ed25519"); })()`)
		page.click(fmt.Sprintf("[data-testid=cert-revoke-%d]", certs[0].ID))
		page.click("[data-testid=confirm-ok]")
		page.wait("the key gone", fmt.Sprintf(`document.querySelector("[data-testid=certs-table]") && !document.querySelector("[data-testid=cert-revoke-%d]")`, certs[0].ID))
		admin.Call("cert.list", map[string]any{}).Decode(t, &certs)
		if len(certs) != 0 {
			t.Fatalf("keys after the revocation: %+v", certs)
		}
	})

	t.Run("phone-sized screens scroll tables, not the page", func(t *testing.T) {
		page.t = t
		page.do(chromedp.EmulateViewport(380, 800))
		defer page.do(chromedp.EmulateViewport(1280, 900))
		for _, r := range [][2]string{{"#/people", "people-page"}, {"#/schedules/1", "schedules-page"}, {"#/credentials/new", "credentials-page"}, {"#/readers", "readers-page"}} {
			goTo(page, r[0], r[1])
			if w := eval[[]int](page, `[document.documentElement.scrollWidth, window.innerWidth]`); w[0] > w[1] {
				t.Errorf("%s is %d px wide on a %d px screen", r[0], w[0], w[1])
			}
			shot(page, "manage-phone-"+r[1]+".png")
		}
	})
}
