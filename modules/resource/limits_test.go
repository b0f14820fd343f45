package resource_test

import (
	"strings"
	"testing"

	"gatehouse/modules/resource"
)

func TestCheckTexts(t *testing.T) {
	s := func(v string) *string { return &v }
	errs := resource.CheckTexts(
		resource.Text{Attr: "alias", Value: s(strings.Repeat("é", 50))},                             // 50 characters, 100 bytes: fits
		resource.Text{Attr: "alias", Value: s(strings.Repeat("a", 51)), Pointer: "mapping/2/alias"}, // too long, own pointer
		resource.Text{Attr: "description", Value: nil},                                              // absent
		resource.Text{Attr: "email", Value: s(strings.Repeat("é", 128))},                            // 256 bytes: too long
		resource.Text{Attr: "config", Value: s(`{"k":"` + strings.Repeat("x", 16<<10-8) + `"}`)},    // 16 KiB exactly
	)
	if len(errs) != 2 || errs[0].Pointer != "mapping/2/alias" || errs[0].Detail != "Alias must not be longer than 50." ||
		errs[1].Pointer != "data/attributes/email" || errs[1].Detail != "Email must not be longer than 254 bytes." {
		t.Fatalf("errors %+v", errs)
	}
	defer func() {
		if recover() == nil {
			t.Error("a text without a limit must panic")
		}
	}()
	resource.CheckTexts(resource.Text{Attr: "nothing", Value: s("x")})
}
