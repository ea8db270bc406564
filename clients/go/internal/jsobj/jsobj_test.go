package jsobj

import "testing"

func TestNumberStringIsJavaScripts(t *testing.T) {
	cases := map[float64]string{
		0: "0", 1: "1", -1: "-1", 250: "250", 1000.333333: "1000.333333", 0.5: "0.5",
		1e21: "1e+21", 1e20: "100000000000000000000", 1.5e-7: "1.5e-7", 1e-6: "0.000001",
		123456789012345680000: "123456789012345680000", 0.30000000000000004: "0.30000000000000004",
		4294967295: "4294967295", -2.5e-10: "-2.5e-10",
	}
	for x, want := range cases {
		if got := NumberString(x); got != want {
			t.Errorf("NumberString(%v) = %q, want %q", x, got, want)
		}
	}
}

func TestStringifyEscapesAsJSONStringify(t *testing.T) {
	obj := NewObject().Set("b", "<&>\u2028\"\\\n\x01é").Set("a", []any{1.0, nil, true, NewObject()}).Set("1", []any{})
	want := `{"1":[],"b":"<&>` + "\u2028" + `\"\\\n\u0001é","a":[1,null,true,{}]}`
	if got := Stringify(obj, ""); got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	indented := Stringify(NewObject().Set("x", []any{1.0}), "  ")
	if indented != "{\n  \"x\": [\n    1\n  ]\n}" {
		t.Errorf("indented form: %q", indented)
	}
}

func TestParseKeepsOrderAndLastValue(t *testing.T) {
	v, err := Parse(` {"z": 1, "a": "x", "z": 2} `)
	if err != nil {
		t.Fatal(err)
	}
	obj := v.(*Object)
	if got := Stringify(obj, ""); got != `{"z":2,"a":"x"}` {
		t.Errorf("got %s", got)
	}
	if _, err := Parse(`{"a":1} x`); err == nil {
		t.Error("trailing text was accepted")
	}
	if ToString(3.0) != "3" || ToString("7") != "7" || ToString(nil) != "null" {
		t.Error("ToString is not String()")
	}
}
