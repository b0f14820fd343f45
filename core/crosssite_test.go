package core

import (
	"crypto/tls"
	"net/http/httptest"
	"net/url"
	"testing"
)

func TestCrossSite(t *testing.T) {
	trusted := func(u *url.URL) bool { return u.Host == "ui.example.com" }
	for _, tc := range []struct {
		name, origin, fetchSite, referer string
		tls, want                        bool
	}{
		{"no browser headers", "", "", "", false, false},
		{"same origin", "http://gate.example.com", "", "", false, false},
		{"same origin, trailing slash", "http://gate.example.com/", "", "", false, false},
		{"same host other scheme", "https://gate.example.com", "", "", false, true},
		{"same origin under TLS", "https://gate.example.com", "", "", true, false},
		{"other site", "http://evil.example", "", "", false, true},
		{"other port", "http://gate.example.com:8443", "", "", false, true},
		{"trusted origin", "https://ui.example.com", "", "", false, false},
		{"null origin", "null", "", "", false, true},
		{"origin with a path", "http://gate.example.com/x", "", "", false, true},
		{"origin with user info", "http://a@gate.example.com", "", "", false, true},
		{"fetch metadata same-origin", "", "same-origin", "", false, false},
		{"fetch metadata typed URL", "", "none", "", false, false},
		{"fetch metadata same-site", "", "same-site", "", false, true},
		{"fetch metadata cross-site", "", "cross-site", "", false, true},
		{"fetch metadata wins over a same-origin referer", "", "cross-site", "http://gate.example.com/x", false, true},
		{"same-origin referer", "", "", "http://gate.example.com/#/live", false, false},
		{"trusted referer", "", "", "https://ui.example.com/app?x=1", false, false},
		{"cross-site referer", "", "", "https://evil.example/page", false, true},
		{"referer of the same host, other scheme", "", "", "http://gate.example.com/", true, true},
		{"relative referer", "", "", "/page", false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("POST", "http://gate.example.com/", nil)
			if tc.origin != "" {
				r.Header.Set("Origin", tc.origin)
			}
			if tc.referer != "" {
				r.Header.Set("Referer", tc.referer)
			}
			if tc.fetchSite != "" {
				r.Header.Set("Sec-Fetch-Site", tc.fetchSite)
			}
			if tc.tls {
				r.TLS = &tls.ConnectionState{}
			}
			if got := CrossSite(r, trusted); got != tc.want {
				t.Errorf("CrossSite = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestOrigins(t *testing.T) {
	trusted := Origins([]string{"https://UI.example.com/", "http://kiosk.example.com:8080"})
	for origin, want := range map[string]bool{
		"https://ui.example.com":        true,
		"http://ui.example.com":         false,
		"https://ui.example.com:8443":   false,
		"http://kiosk.example.com:8080": true,
		"http://kiosk.example.com":      false,
		"https://evil.example":          false,
	} {
		u, err := url.Parse(origin)
		if err != nil {
			t.Fatal(err)
		}
		if got := trusted(u); got != want {
			t.Errorf("Origins(...)(%s) = %v, want %v", origin, got, want)
		}
	}
}
