package web_test

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"gatehouse/core"
	"gatehouse/core/coretest"
)

// TestDashboardAsksToChangeTheInitialPassword: an admin logged in with the password generated
// on first start sees a notice linking to the password form until the password is changed; the
// change deletes the initial-admin-password file and the notice goes.
func TestDashboardAsksToChangeTheInitialPassword(t *testing.T) {
	srv := coretest.Start(t, coretest.WithConfig(func(c *core.Config) { c.AdminPassword = "" }),
		coretest.WithModuleConfig("auth", `{"password_hash": {"memory_kib": 64, "iterations": 1, "parallelism": 1}}`))
	file := filepath.Join(srv.Config.Data, core.InitialPasswordFile)
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("generated password file: %v", err)
	}
	pw := strings.TrimSpace(string(b))

	page := newTab(t, newBrowser(t), true)
	page.do(chromedp.Navigate(srv.HTTPURL + "/"))
	page.login("admin", pw)
	notice := `document.querySelector("[data-testid=initial-password-notice]")`
	page.wait("the initial password notice", notice+` && !`+notice+`.hidden && `+notice+`.textContent.includes("generated initial password")`)
	page.click("[data-testid=initial-password-change]")
	page.wait("the account page", `location.hash === "#/account" && !!document.querySelector("[data-testid=password-form]")`)
	page.setField("[data-testid=pw-current]", pw)
	page.setField("[data-testid=pw-new]", "a-chosen-password")
	page.setField("[data-testid=pw-again]", "a-chosen-password")
	page.click("[data-testid=pw-submit]")
	page.wait("the notice gone", notice+`.hidden`)
	if _, err := os.Stat(file); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("initial password file after the change: %v, want it deleted", err)
	}
	// A reload (whoami again) does not bring it back.
	page.do(chromedp.Reload())
	page.wait("the shell after a reload", `!!document.querySelector("[data-testid=whoami]")`)
	if eval[bool](page, notice+`.hidden`) != true {
		t.Error("the notice is back after a reload")
	}
}
