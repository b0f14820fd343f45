package sysadm_test

import (
	"fmt"
	"strings"
	"testing"

	"gatehouse/core/coretest"
	"gatehouse/modules/eventlog"
)

// TestEventsPatternsBoundedPerConnection (issue 10, point 5): events/subscribe calls add up
// to at most eventlog.MaxPatterns patterns per connection; the one that would exceed it is
// refused (400, naming the bound), and the subscription goes on as it was.
func TestEventsPatternsBoundedPerConnection(t *testing.T) {
	t.Parallel()
	srv := start(t, "")
	c := dial(t, wsURL(srv))
	c.login("admin", coretest.AdminPassword)
	for i := range eventlog.MaxPatterns {
		c.ok("events", "subscribe", fmt.Sprintf("p%d.>", i))
	}
	c.ok("events", "subscribe", "p0.>") // already held
	f := c.wantCode("events", "subscribe", []string{"one.more"}, 400)
	if !strings.Contains(string(f.Args), fmt.Sprint("at most ", eventlog.MaxPatterns)) {
		t.Errorf("refusal %s does not name the bound", f.Args)
	}
	c.ok("events", "unsubscribe", "p1.>")
	c.ok("events", "subscribe", []string{"one.more"})
}
