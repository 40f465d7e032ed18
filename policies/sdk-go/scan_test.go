package plate

import (
	"encoding/json"
	"testing"
)

func TestMemberFindsExactKeysAtTheTopLevelOnly(t *testing.T) {
	doc := []byte(` { "a" : {"b": "nested"}, "B": 1, "b" : [1, "x]}", {"b": 2}], "c": null } `)
	for key, want := range map[string]string{
		"a": `{"b": "nested"}`,
		"b": `[1, "x]}", {"b": 2}]`,
		"B": `1`,
		"c": `null`,
		"d": ``,
	} {
		got, err := member(doc, key)
		if err != nil || string(got) != want {
			t.Errorf("member %q = %q, %v; want %q", key, got, err, want)
		}
	}
	if got, _ := member([]byte(`{"\u0061": 5}`), "a"); string(got) != "5" {
		t.Errorf("an escaped key is its decoded text: got %q", got)
	}
}

func TestElementsAndStrings(t *testing.T) {
	var got []string
	err := elements([]byte(`["a\"b", "tab\tx", "\u00e9\ud83d\ude00", "lone \ud800 surrogate", null]`), func(v []byte) error {
		if isNullValue(v) {
			got = append(got, "<null>")
			return nil
		}
		s, err := unquote(v)
		got = append(got, s)
		return err
	})
	want := []string{`a"b`, "tab\tx", "é😀", "lone \uFFFD surrogate", "<null>"}
	if err != nil || len(got) != len(want) {
		t.Fatalf("got %q, %v", got, err)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("element %d: got %q want %q", i, got[i], want[i])
		}
	}
	// Strings decode as encoding/json decodes them.
	for _, raw := range []string{`"\ud83d"`, `"\ud83dx"`, `"\/\b\f\n\r"`, `"plain"`} {
		var std string
		if err := json.Unmarshal([]byte(raw), &std); err != nil {
			t.Fatal(err)
		}
		if ours, err := unquote([]byte(raw)); err != nil || ours != std {
			t.Errorf("%s: ours %q (%v), encoding/json %q", raw, ours, err, std)
		}
	}
}

func TestMalformedInputIsAnErrorNotAPanic(t *testing.T) {
	for _, doc := range []string{``, `{`, `{"a"`, `{"a":`, `{"a":1,`, `{"a" 1}`, `[`, `"x`, `{"a":[1,2}`, `7`, `{"a":"\`} {
		_, err := member([]byte(doc), "a")
		errList := elements([]byte(doc), func([]byte) error { return nil })
		if err == nil && errList == nil {
			t.Errorf("%q: no error", doc)
		}
	}
}

func TestTheEnvelopeDecodesLikeEncodingJSON(t *testing.T) {
	input := []byte(`{"settings":{"registries":["a.io"]},"environment":"prod","namespaceLabels":{"environment":"production","te\"am":"x"},
		"request":{"uid":"u1","kind":{"group":"apps","version":"v1","kind":"Deployment"},"subResource":null,"name":"api","namespace":"plate-prod",
		"operation":"UPDATE","object":{"spec":{}},"oldObject":null,"dryRun":true,"userInfo":{"username":"x"}}}`)
	type settings struct {
		Registries []string `json:"registries"`
	}
	var ours Request[settings]
	if err := decodeInput(input, &ours); err != nil {
		t.Fatal(err)
	}
	var std Request[settings]
	if err := json.Unmarshal(input, &std); err != nil {
		t.Fatal(err)
	}
	a, _ := json.Marshal(ours)
	b, _ := json.Marshal(std)
	if string(a) != string(b) {
		t.Errorf("ours %s\nstd  %s", a, b)
	}
}

func FuzzScanNeverPanics(f *testing.F) {
	f.Add([]byte(`{"spec":{"template":{"spec":{"containers":[{"name":"a","image":"b"}]}}}}`))
	f.Add([]byte(`{"a":"\ud83d\ude00"}`))
	f.Fuzz(func(t *testing.T, doc []byte) {
		_, _ = ContainersOf("Deployment", doc)
		var req Request[map[string]any]
		_ = decodeInput(doc, &req)
	})
}
