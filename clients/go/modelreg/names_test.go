package modelreg

import "testing"

func TestParseVersionRef(t *testing.T) {
	cases := map[string]string{
		"fraud/detector@production":                           "namespaces/fraud/models/detector/aliases/production",
		"fraud/detector/3":                                    "namespaces/fraud/models/detector/versions/3",
		"namespaces/fraud/models/detector/versions/12":        "namespaces/fraud/models/detector/versions/12",
		"namespaces/fraud/models/detector/aliases/production": "namespaces/fraud/models/detector/aliases/production",
	}
	for text, want := range cases {
		ref, err := ParseVersionRef(text)
		if err != nil || ref.Name() != want {
			t.Errorf("ParseVersionRef(%q) = %q, %v; want %q", text, ref.Name(), err, want)
		}
	}
	for _, bad := range []string{"", "fraud", "fraud/detector", "fraud/detector/0", "fraud/detector/x", "Fraud/detector@prod",
		"fraud/detector@Prod", "fraud/detector/3/4", "namespaces/fraud/models/detector/tags/x"} {
		if _, err := ParseVersionRef(bad); Reason(err) != "INVALID_ARGUMENT" {
			t.Errorf("ParseVersionRef(%q): %v, want INVALID_ARGUMENT", bad, err)
		}
	}
}

func TestCheckFilePathRefusesEscapes(t *testing.T) {
	for _, good := range []string{"model.bin", "weights/part-1.safetensors", "a/b/c"} {
		if err := CheckFilePath(good); err != nil {
			t.Errorf("%q: %v", good, err)
		}
	}
	for _, bad := range []string{"", "/etc/passwd", "../up", "a/../b", "a//b", "./a", `a\b`, "a\nb", "a/"} {
		if err := CheckFilePath(bad); err == nil {
			t.Errorf("%q was accepted", bad)
		}
	}
}
