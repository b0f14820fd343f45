package smtp_test

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"io"
	"math/big"
	"mime"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"net/textproto"
	"strings"
	"sync"
	"testing"
	"time"
)

// mailServer is a small SMTP server for the tests, on 127.0.0.1: it offers STARTTLS with a
// self-signed certificate (or TLS from the start, or no TLS at all), AUTH PLAIN once TLS is
// on, requires authentication when a user is set, and records the messages it accepts.
type mailServer struct {
	t        testing.TB
	addr     string
	tls      *tls.Config
	implicit bool // TLS from the connection's start (smtps)
	noTLS    bool // offer no STARTTLS
	user, pw string
	rejectTo string // RCPT TO this address is refused with 550

	mu     sync.Mutex
	ln     net.Listener
	msgs   []received
	logins []string
	wg     sync.WaitGroup
}

// received is one accepted message.
type received struct {
	From    string
	To      []string
	Subject string
	Body    string
	Header  mail.Header
	Raw     string
	TLS     bool
}

func selfSigned(t testing.TB) tls.Certificate {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test smtp"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// newMailServer starts a server; opts adjust it before it listens. It stops with the test.
func newMailServer(t testing.TB, opts ...func(*mailServer)) *mailServer {
	s := &mailServer{t: t, tls: &tls.Config{Certificates: []tls.Certificate{selfSigned(t)}}}
	for _, o := range opts {
		o(s)
	}
	s.addr = "127.0.0.1:0"
	s.Up()
	t.Cleanup(func() { s.Down(); s.wg.Wait() })
	return s
}

// URL is the server's smtp:// (or smtps://) URL.
func (s *mailServer) URL() string {
	if s.implicit {
		return "smtps://" + s.addr
	}
	return "smtp://" + s.addr
}

// Up listens (again, on the same address).
func (s *mailServer) Up() {
	var ln net.Listener
	var err error
	for range 50 { // the port of a listener just closed may take a moment to be free
		if ln, err = net.Listen("tcp", s.addr); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		s.t.Fatalf("mail server listen: %v", err)
	}
	s.mu.Lock()
	s.ln, s.addr = ln, ln.Addr().String()
	s.mu.Unlock()
	s.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.wg.Go(func() { s.serve(c) })
		}
	})
}

// Down stops listening: connections are refused until Up.
func (s *mailServer) Down() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln != nil {
		_ = s.ln.Close()
		s.ln = nil
	}
}

// Messages returns the messages received so far.
func (s *mailServer) Messages() []received {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]received(nil), s.msgs...)
}

func (s *mailServer) serve(c net.Conn) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	isTLS := false
	if s.implicit {
		c = tls.Server(c, s.tls)
		isTLS = true
	}
	tp := textproto.NewConn(c)
	reply := func(lines ...string) { _ = tp.PrintfLine("%s", strings.Join(lines, "\r\n")) }
	reply("220 test ESMTP")
	authed := false
	var from string
	var to []string
	for {
		line, err := tp.ReadLine()
		if err != nil {
			return
		}
		verb, arg, _ := strings.Cut(line, " ")
		switch strings.ToUpper(verb) {
		case "EHLO", "HELO":
			lines := []string{"250-test"}
			if !isTLS && !s.noTLS {
				lines = append(lines, "250-STARTTLS")
			}
			if isTLS {
				lines = append(lines, "250-AUTH PLAIN")
			}
			reply(append(lines, "250 8BITMIME")...)
		case "STARTTLS":
			if isTLS || s.noTLS {
				reply("503 no")
				continue
			}
			reply("220 go ahead")
			tc := tls.Server(c, s.tls)
			if err := tc.Handshake(); err != nil {
				return
			}
			c, isTLS, authed = tc, true, false
			tp = textproto.NewConn(c)
		case "AUTH":
			mech, resp, _ := strings.Cut(arg, " ")
			raw, err := base64.StdEncoding.DecodeString(resp)
			parts := strings.Split(string(raw), "\x00")
			if !isTLS || !strings.EqualFold(mech, "PLAIN") || err != nil || len(parts) != 3 || parts[1] != s.user || parts[2] != s.pw {
				reply("535 5.7.8 authentication failed")
				continue
			}
			authed = true
			s.mu.Lock()
			s.logins = append(s.logins, parts[1])
			s.mu.Unlock()
			reply("235 2.7.0 ok")
		case "MAIL":
			if s.user != "" && !authed {
				reply("530 5.7.0 authentication required")
				continue
			}
			from, to = angle(arg), nil
			reply("250 ok")
		case "RCPT":
			addr := angle(arg)
			if addr == s.rejectTo {
				reply("550 5.1.1 no such user")
				continue
			}
			to = append(to, addr)
			reply("250 ok")
		case "DATA":
			reply("354 go on")
			data, err := tp.ReadDotBytes()
			if err != nil {
				return
			}
			s.record(from, to, string(data), isTLS)
			reply("250 queued")
		case "RSET", "NOOP":
			reply("250 ok")
		case "QUIT":
			reply("221 bye")
			return
		default:
			reply("502 unknown")
		}
	}
}

func (s *mailServer) record(from string, to []string, raw string, isTLS bool) {
	r := received{From: from, To: to, Raw: raw, TLS: isTLS}
	if m, err := mail.ReadMessage(strings.NewReader(raw)); err == nil {
		r.Header = m.Header
		r.Subject, _ = new(mime.WordDecoder).DecodeHeader(m.Header.Get("Subject"))
		var body io.Reader = m.Body
		if strings.EqualFold(m.Header.Get("Content-Transfer-Encoding"), "quoted-printable") {
			body = quotedprintable.NewReader(m.Body)
		}
		b, _ := io.ReadAll(bufio.NewReader(body))
		r.Body = strings.ReplaceAll(string(b), "\r\n", "\n")
	}
	s.mu.Lock()
	s.msgs = append(s.msgs, r)
	s.mu.Unlock()
}

// angle returns what is between the first < and the next > of a MAIL or RCPT argument.
func angle(arg string) string {
	_, rest, _ := strings.Cut(arg, "<")
	addr, _, _ := strings.Cut(rest, ">")
	return addr
}
