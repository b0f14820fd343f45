package webhook

import "gatehouse/core"

var _ core.SecretRedactor = (*Module)(nil)

// RedactSecrets implements core.SecretRedactor: each target's signing secret, header values
// and URL credentials and query are replaced, for display (check-config).
func (m *Module) RedactSecrets() {
	for i := range m.Targets {
		t := &m.Targets[i]
		if t.Secret != "" {
			t.Secret = "***"
		}
		for k := range t.Headers {
			t.Headers[k] = "***"
		}
		if t.URL != "" {
			t.URL = redactURL(t.URL)
		}
	}
}
