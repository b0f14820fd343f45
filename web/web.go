// Package web is the gatehouse dashboard: plain HTML, CSS and ES modules embedded in the binary
// (no build step) and served by Handler. The dashboard speaks the Leosac websocket API at
// /websocket like any other client.
package web

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"net/http"
	"path"
	"strings"
	"time"
)

//go:embed static
var static embed.FS

// ContentSecurityPolicy is sent with every response of Handler: scripts and styles only from
// the server's own files (no inline script or style attribute), connections (fetch and
// websockets) only to this origin, no framing, no plugins. CSP Level 3 lets 'self' match
// ws:// and wss:// to the page's own host and port, as every current browser implements.
const ContentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self'; " +
	"img-src 'self' data: blob:; connect-src 'self'; font-src 'self'; object-src 'none'; " +
	"base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// contentTypes pins the types of the files served (the host's mime tables are not trusted).
var contentTypes = map[string]string{
	".html": "text/html; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".css":  "text/css; charset=utf-8",
	".svg":  "image/svg+xml",
	".png":  "image/png",
	".ico":  "image/x-icon",
	".json": "application/json",
	".txt":  "text/plain; charset=utf-8",
}

// file is one embedded file, ready to serve.
type file struct {
	data  []byte
	ctype string
	etag  string
}

// handler serves the embedded files.
type handler struct {
	files map[string]file // by path without the leading slash, "index.html" for the shell
}

// Handler returns the dashboard's handler: GET and HEAD only (405 otherwise); an embedded file
// by its path; "/" and any unknown path without a file extension → index.html (the dashboard
// routes on the URL fragment); an unknown file path → 404. Every response carries a strict
// Content-Security-Policy, X-Content-Type-Options: nosniff, X-Frame-Options: DENY and
// Referrer-Policy: no-referrer; files are sent with an ETag and Cache-Control: no-cache (they are
// revalidated, so a new binary's dashboard is picked up at once), answering 304 when unchanged.
func Handler() http.Handler {
	h := &handler{files: map[string]file{}}
	sub, err := fs.Sub(static, "static")
	if err != nil {
		panic(err) // the embedded tree always has static/
	}
	_ = fs.WalkDir(sub, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := fs.ReadFile(sub, p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(data)
		ct := contentTypes[path.Ext(p)]
		if ct == "" {
			ct = "application/octet-stream"
		}
		h.files[p] = file{data: data, ctype: ct, etag: `"` + hex.EncodeToString(sum[:12]) + `"`}
		return nil
	})
	return h
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hd := w.Header()
	hd.Set("Content-Security-Policy", ContentSecurityPolicy)
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("X-Frame-Options", "DENY")
	hd.Set("Referrer-Policy", "no-referrer")
	hd.Set("Cross-Origin-Opener-Policy", "same-origin")
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		hd.Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	name := strings.TrimPrefix(path.Clean("/"+r.URL.Path), "/")
	f, ok := h.files[name]
	if !ok {
		if name != "" && path.Ext(name) != "" {
			http.NotFound(w, r)
			return
		}
		f = h.files["index.html"]
	}
	hd.Set("Content-Type", f.ctype)
	hd.Set("Cache-Control", "no-cache")
	hd.Set("ETag", f.etag)
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(f.data))
}
