package auth

import (
	"encoding/base64"
	"net/http"
	"strings"
	"unicode/utf8"
)

// BasicAuth returns the username and password of the request's "Authorization: Basic" header
// (scheme matched in any case), decoded by DecodeBasic; ok is false when there is none or it
// is malformed.
func BasicAuth(r *http.Request) (username, password string, ok bool) {
	scheme, cred, found := strings.Cut(r.Header.Get("Authorization"), " ")
	if !found || !strings.EqualFold(scheme, "Basic") {
		return "", "", false
	}
	return DecodeBasic(cred)
}

// DecodeBasic decodes the base64 "user:password" of Basic credentials. The bytes are UTF-8 when
// they are valid UTF-8 and are otherwise read as Latin-1 (what browsers and older clients send,
// and what wazo-auth and sysadm accept). ok is false for bad base64 or a missing colon.
func DecodeBasic(cred string) (username, password string, ok bool) {
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(cred))
	if err != nil {
		return "", "", false
	}
	s := string(raw)
	if !utf8.Valid(raw) {
		runes := make([]rune, len(raw))
		for i, b := range raw {
			runes[i] = rune(b) // Latin-1 is the first 256 code points
		}
		s = string(runes)
	}
	username, password, ok = strings.Cut(s, ":")
	if !ok {
		return "", "", false
	}
	return username, password, true
}
