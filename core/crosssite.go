package core

import (
	"net/http"
	"net/url"
	"strings"
)

// CrossSite reports whether a browser sent r from another site, for the endpoints that act on
// credentials a browser adds by itself (cookies, Basic): an Origin header that is neither this
// server (same scheme and host) nor trusted; without Origin, a Sec-Fetch-Site other than
// same-origin or none; without either (browsers older than Fetch Metadata), a Referer whose
// origin is neither this server nor trusted. Clients that are not browsers send none of these
// headers and are never cross-site. An Origin that is not a plain scheme://host ("null" from
// sandboxes and files, garbage) is cross-site, as is a Referer that is not an absolute URL.
// trusted, if not nil, may accept other origins.
func CrossSite(r *http.Request, trusted func(origin *url.URL) bool) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		switch r.Header.Get("Sec-Fetch-Site") {
		case "same-origin", "none":
			return false
		case "":
		default:
			return true
		}
		ref := r.Header.Get("Referer")
		if ref == "" {
			return false
		}
		u, err := url.Parse(ref)
		if err != nil || u.Host == "" || u.User != nil {
			return true
		}
		return !sameOrigin(r, &url.URL{Scheme: u.Scheme, Host: u.Host}, trusted)
	}
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" || u.User != nil || (u.Path != "" && u.Path != "/") {
		return true
	}
	return !sameOrigin(r, u, trusted)
}

// sameOrigin reports whether origin is this server's (same scheme and host) or trusted.
func sameOrigin(r *http.Request, origin *url.URL, trusted func(origin *url.URL) bool) bool {
	if trusted != nil && trusted(origin) {
		return true
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return strings.EqualFold(origin.Scheme, scheme) && strings.EqualFold(origin.Host, r.Host)
}

// Origins returns a CrossSite trust function that accepts exactly the listed origins
// (scheme://host[:port], compared without case; a trailing slash is ignored).
func Origins(list []string) func(origin *url.URL) bool {
	return func(u *url.URL) bool {
		origin := u.Scheme + "://" + u.Host
		for _, o := range list {
			if strings.EqualFold(strings.TrimSuffix(o, "/"), origin) {
				return true
			}
		}
		return false
	}
}
