package tokens

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func write(t *testing.T, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "tokens")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestJSONBook(t *testing.T) {
	path := write(t, `{"dom0": "dom0-token-1", "operator": "operator-token-2", "xen": "xen-token-333"}`)
	for _, c := range []struct {
		identities []string
		want       string
	}{
		{[]string{"operator", "dom0", "xen"}, "operator-token-2"},
		{[]string{"dom0"}, "dom0-token-1"},
	} {
		got, err := Resolve(path, c.identities)
		if err != nil || got != c.want {
			t.Errorf("Resolve(%v) = %q, %v; want %q", c.identities, got, err, c.want)
		}
	}
}

func TestFlatYAMLBook(t *testing.T) {
	path := write(t, "---\n# tokens\r\ndom0: 'dom0-token-1'   # quoted\n  \noperator : \"operator-token-2\"\nxen:xen-token-333\n")
	book, err := LoadBook(path)
	if err != nil {
		t.Fatal(err)
	}
	for identity, want := range map[string]string{"dom0": "dom0-token-1", "operator": "operator-token-2", "xen": "xen-token-333"} {
		if got, _ := book.Get(identity); got != want {
			t.Errorf("%s = %v, want %s", identity, got, want)
		}
	}
	// Only dom0 in the book: status falls back to it.
	only := write(t, "dom0: dom0-token-1\n")
	if got, err := Resolve(only, []string{"operator", "dom0", "xen"}); err != nil || got != "dom0-token-1" {
		t.Errorf("fallback to dom0: %q, %v", got, err)
	}
}

func TestNoFileMeansNoToken(t *testing.T) {
	t.Setenv(FileEnv, "")
	if got, err := Resolve("", []string{"dom0"}); err != nil || got != "" {
		t.Errorf("got %q, %v", got, err)
	}
	path := write(t, `{"dom0": "from-the-environment"}`)
	t.Setenv(FileEnv, path)
	if got, err := Resolve("", []string{"dom0"}); err != nil || got != "from-the-environment" {
		t.Errorf("$%s: got %q, %v", FileEnv, got, err)
	}
}

func TestBadBooks(t *testing.T) {
	dir := t.TempDir()
	cases := []struct{ text, want string }{
		{`{}`, ": expected a mapping of identity: token"},
		{`["dom0"]`, ": expected a mapping of identity: token"},
		{`"dom0"`, ": expected a mapping of identity: token"},
		{"just words\n", ": expected a mapping of identity: token"},
		{`{"dom0": "short"}`, ": entry 'dom0' must map a name to a token of 8+ characters"},
		{`{"dom0": 12345678}`, ": entry 'dom0' must map a name to a token of 8+ characters"},
		{`{"xen": "xen-token-333"}`, ": no 'dom0' entry"},
	}
	for _, c := range cases {
		path := write(t, c.text)
		_, err := Resolve(path, []string{"dom0"})
		if err == nil || err.Error() != path+c.want {
			t.Errorf("%s: got %v, want %q", c.text, err, path+c.want)
		}
	}
	missing := filepath.Join(dir, "missing.json")
	if _, err := Resolve(missing, []string{"dom0"}); err == nil || err.Error() != missing+": cannot read token file: ENOENT" {
		t.Errorf("missing file: %v", err)
	}
	if _, err := Resolve(dir, []string{"dom0"}); err == nil || !strings.HasSuffix(err.Error(), ": cannot read token file: EISDIR") {
		t.Errorf("a folder: %v", err)
	}
	if _, err := Resolve(write(t, `{"dom0": "dom0-token-1", "operator": "x"}`), []string{"operator", "dom0"}); err == nil ||
		!strings.HasSuffix(err.Error(), "entry 'operator' must map a name to a token of 8+ characters") {
		t.Errorf("every entry is checked: %v", err)
	}
}
