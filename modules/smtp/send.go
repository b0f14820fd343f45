package smtp

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"mime"
	"mime/quotedprintable"
	"net"
	"net/smtp"
	"net/textproto"
	"strings"
	"time"
)

// message is one mail to send.
type message struct {
	to      []string
	subject string
	body    string
	seq     int64 // the last event it reports (0 for a test mail)
}

// permanentError is a 5xx answer to MAIL, RCPT or DATA: the server refuses this mail for
// good, so retrying it is pointless.
type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// stage wraps an SMTP command's error, marking 5xx answers to the mail's own commands
// permanent.
func stage(what string, err error, canBePermanent bool) error {
	var te *textproto.Error
	if canBePermanent && errors.As(err, &te) && te.Code >= 500 && te.Code < 600 {
		return &permanentError{fmt.Errorf("%s: %w", what, err)}
	}
	return fmt.Errorf("%s: %w", what, err)
}

// tlsConfig returns the TLS settings of a server: verify_peer false skips every check;
// verify_host false checks the chain but not the name.
func tlsConfig(s Server, host string) *tls.Config {
	cfg := &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}
	switch {
	case !boolOr(s.VerifyPeer, true):
		cfg.InsecureSkipVerify = true
	case !boolOr(s.VerifyHost, true):
		cfg.InsecureSkipVerify = true
		cfg.VerifyConnection = func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("no server certificate")
			}
			inter := x509.NewCertPool()
			for _, c := range cs.PeerCertificates[1:] {
				inter.AddCert(c)
			}
			_, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{Intermediates: inter})
			return err
		}
	}
	return cfg
}

// send delivers msg through server s in one SMTP transaction, bounded by s's timeout and
// by ctx. Errors never contain the password.
func send(ctx context.Context, s Server, msg message) error {
	ep, err := parseURL(s.URL)
	if err != nil {
		return fmt.Errorf("url: %w", err)
	}
	timeout := time.Duration(s.Timeout) * time.Millisecond
	if timeout <= 0 {
		timeout = DefaultTimeout * time.Millisecond
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	d := net.Dialer{}
	conn, err := d.DialContext(ctx, "tcp", ep.addr)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer conn.Close()
	deadline, _ := ctx.Deadline()
	_ = conn.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	tcfg := tlsConfig(s, ep.host)
	if ep.implicitTLS {
		tc := tls.Client(conn, tcfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			return fmt.Errorf("TLS: %w", err)
		}
		conn = tc
	}
	c, err := smtp.NewClient(conn, ep.host)
	if err != nil {
		return fmt.Errorf("greeting: %w", err)
	}
	defer c.Close()
	if err := c.Hello(heloName(conn.LocalAddr())); err != nil {
		return stage("EHLO", err, false)
	}
	if !ep.implicitTLS {
		if ok, _ := c.Extension("STARTTLS"); ok {
			if err := c.StartTLS(tcfg); err != nil {
				return stage("STARTTLS", err, false)
			}
		} else if !(s.AllowPlain && ep.loopback) {
			return errors.New("the server does not offer STARTTLS, which is required (allow_plain is only for a loopback host)")
		}
	}
	if s.Username != "" {
		if ok, _ := c.Extension("AUTH"); !ok {
			return errors.New("the server does not offer AUTH, and a username is configured")
		}
		if err := c.Auth(smtp.PlainAuth("", s.Username, s.Password, ep.host)); err != nil {
			return stage("AUTH PLAIN", err, false)
		}
	}
	if err := c.Mail(s.From); err != nil {
		return stage("MAIL FROM", err, true)
	}
	for _, to := range msg.to {
		if err := c.Rcpt(to); err != nil {
			return stage("RCPT TO", err, true)
		}
	}
	w, err := c.Data()
	if err != nil {
		return stage("DATA", err, true)
	}
	if _, err := w.Write(compose(s.From, msg)); err != nil {
		return fmt.Errorf("DATA: %w", err)
	}
	if err := w.Close(); err != nil {
		return stage("end of DATA", err, true)
	}
	_ = c.Quit() // the mail is accepted (the end of DATA was answered 250), whatever QUIT answers
	return nil
}

// clean removes control characters (header injection) and trims.
func clean(s string) string {
	return strings.TrimSpace(strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s))
}

// compose builds the RFC 5322 message: a plain-text UTF-8 body, quoted-printable.
func compose(from string, msg message) []byte {
	var b bytes.Buffer
	id := make([]byte, 12)
	_, _ = rand.Read(id)
	domain := "gatehouse"
	if _, d, ok := strings.Cut(from, "@"); ok {
		domain = d
	}
	fmt.Fprintf(&b, "From: %s\r\n", from)
	fmt.Fprintf(&b, "To: %s\r\n", strings.Join(msg.to, ", "))
	fmt.Fprintf(&b, "Subject: %s\r\n", mime.QEncoding.Encode("utf-8", clean(msg.subject)))
	fmt.Fprintf(&b, "Date: %s\r\n", time.Now().Format(time.RFC1123Z))
	fmt.Fprintf(&b, "Message-ID: <%s@%s>\r\n", hex.EncodeToString(id), domain)
	if msg.seq > 0 {
		fmt.Fprintf(&b, "X-Gatehouse-Seq: %d\r\n", msg.seq)
	}
	b.WriteString("MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n")
	qp := quotedprintable.NewWriter(&b)
	_, _ = qp.Write([]byte(strings.ReplaceAll(msg.body, "\n", "\r\n")))
	_ = qp.Close()
	b.WriteString("\r\n")
	return b.Bytes()
}

// heloName is the EHLO argument: the address literal of the local end of the connection
// (RFC 5321 §4.1.3), which every server accepts where a bare host name may be refused.
func heloName(a net.Addr) string {
	ta, ok := a.(*net.TCPAddr)
	if !ok || ta.IP == nil {
		return "localhost"
	}
	if ip4 := ta.IP.To4(); ip4 != nil {
		return "[" + ip4.String() + "]"
	}
	return "[IPv6:" + ta.IP.String() + "]"
}
