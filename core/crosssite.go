package core

import (
	"net/http"
	"net/url"
	"strings"
)

// CrossSite reports whether a browser sent r from another site, for the endpoints that act on
// credentials a browser adds by itself (cookies, Basic): an Origin header that is neither this
// server (same scheme and host) nor trusted, or, without Origin, a Sec-Fetch-Site other than
// same-origin or none. Clients that are not browsers send neither header and are never
// cross-site. An Origin that is not a plain scheme://host ("null" from sandboxes and files,
// garbage) is cross-site. trusted, if not nil, may accept other origins.
func CrossSite(r *http.Request, trusted func(origin *url.URL) bool) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		switch r.Header.Get("Sec-Fetch-Site") {
		case "", "same-origin", "none":
			return false
		}
		return true
	}
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" || u.User != nil || (u.Path != "" && u.Path != "/") {
		return true
	}
	if trusted != nil && trusted(u) {
		return false
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return !strings.EqualFold(u.Scheme, scheme) || !strings.EqualFold(u.Host, r.Host)
}
