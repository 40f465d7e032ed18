package plate

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

func TestVerdictsEncodeAsEncodingJSONWouldAndAsTheABISays(t *testing.T) {
	verdicts := []Verdict{
		Allow(),
		Allow().WithWarning("w\u2028\x01<&>"),
		Deny(NewViolation("container:api", "bad \"image\"\n\t\\").At("spec.containers[0].image").WithSummary("api: bad")),
		FromViolations([]Violation{NewViolation("a", "m1"), NewViolation("b", "invalid \xff utf-8")}),
		Error("cannot read"),
	}
	for _, v := range verdicts {
		ours := v.encode()
		var back Verdict
		if err := json.Unmarshal(ours, &back); err != nil {
			t.Fatalf("%s: %v", ours, err)
		}
		std, _ := json.Marshal(v)
		var want Verdict
		if err := json.Unmarshal(std, &want); err != nil {
			t.Fatal(err)
		}
		// Both read back the same (invalid UTF-8 becomes U+FFFD in both).
		if !reflect.DeepEqual(back, want) {
			t.Errorf("round trip differs:\n ours %s\n std  %s", ours, std)
		}
	}
	if got := string(Deny(NewViolation("k", "m").At("p")).encode()); got != `{"allowed":false,"violations":[{"key":"k","message":"m","path":"p"}]}` {
		t.Errorf("got %s", got)
	}
	if got := string(Allow().encode()); got != `{"allowed":true}` {
		t.Errorf("got %s", got)
	}
	if got := string((SettingsValidation{Message: "x is empty"}).encode()); !strings.Contains(got, `"valid":false,"message":"x is empty"`) {
		t.Errorf("got %s", got)
	}
}
