package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestOutFileKeepsWhatIsLoggedAndAppends(t *testing.T) {
	out := filepath.Join(t.TempDir(), "dom0.jsonl")
	// Two records, one line that is not a record, and a torn last line (a crash mid-write).
	before := `{"pcpu":1,"record_id":"3","type":"CMC"}` + "\n" + "not json\n" + `{"pcpu":2,"record_id":"18446744073709551615"}` + "\n" + `{"pcpu":1,"rec`
	if err := os.WriteFile(out, []byte(before), 0o600); err != nil {
		t.Fatal(err)
	}
	sink, err := openLog(out, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(sink.alreadyLogged, " "); got != "1:3 2:18446744073709551615" {
		t.Errorf("already logged: %q", got)
	}
	for _, line := range []string{`{"pcpu":1,"record_id":"4"}`, `{"pcpu":1,"record_id":"5"}`} {
		if err := sink.Write(line); err != nil {
			t.Fatal(err)
		}
	}
	sink.close()
	data, _ := os.ReadFile(out)
	want := before + "\n" + `{"pcpu":1,"record_id":"4"}` + "\n" + `{"pcpu":1,"record_id":"5"}` + "\n"
	if string(data) != want {
		t.Errorf("file:\n%s\nwant:\n%s", data, want)
	}
}

func TestOutFileThatCannotBeOpened(t *testing.T) {
	dir := t.TempDir()
	if _, err := openLog(dir, nil); err == nil || err.Error() != "--out: cannot read "+dir+": EISDIR" {
		t.Errorf("a folder: %v", err)
	}
	missing := filepath.Join(dir, "no", "such", "file")
	if _, err := openLog(missing, nil); err == nil || err.Error() != "--out: cannot open "+missing+": ENOENT" {
		t.Errorf("no such folder: %v", err)
	}
}
