package live

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"
)

func keys(lines []logLine) []string {
	var out []string
	for _, l := range lines {
		out = append(out, fmt.Sprintf("%d:%s:%s", l.Pcpu, l.RecordID, l.Type))
	}
	sort.Strings(out)
	return out
}

func expectKeys(pcpu int, kind string, ids []string) []string {
	var out []string
	for _, id := range ids {
		out = append(out, fmt.Sprintf("%d:%s:%s", pcpu, id, kind))
	}
	return out
}

func sorted(items ...[]string) []string {
	var out []string
	for _, i := range items {
		out = append(out, i...)
	}
	sort.Strings(out)
	return out
}

var createdAt = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z$`)

func TestLiveWithTokens(t *testing.T) {
	tb := startTestbed(t, 4, false)

	t.Run("dom0 logs exactly the injected records once each and nothing stays pending", func(t *testing.T) {
		dom0 := start(t, client, "dom0", "--xen", tb.xen, "--token-file", tb.tokensPath, "--cpe-poll", "200")
		waitFor(t, 20*time.Second, func() string { _, e := dom0.output(); return "dom0 attached; its stderr: " + e },
			func() bool { return tb.status()["dom0_attached"] == true })

		// vCPU0 runs on pCPU 0: pCPU 1 and 2 are read by IPI, pCPU 0 by a local call.
		want := sorted(
			expectKeys(1, "CMC", tb.inject(1, "cmc", 5)),
			expectKeys(2, "CPE", tb.inject(2, "cpe", 2)),
			expectKeys(0, "CMC", tb.inject(0, "cmc", 1)),
		)
		waitFor(t, 30*time.Second, func() string { o, e := dom0.output(); return "8 records; got " + o + e },
			func() bool { o, _ := dom0.output(); return completeLines(o) >= 8 })
		stdout, _ := dom0.output()
		lines := parseLines(t, stdout)
		if got := keys(lines); strings.Join(got, " ") != strings.Join(want, " ") {
			t.Errorf("logged %v, injected %v", got, want)
		}
		for _, l := range lines {
			if l.ByIPI == nil || *l.ByIPI != (l.Pcpu != 0) {
				t.Errorf("pCPU %d record %s: by_ipi %v", l.Pcpu, l.RecordID, l.ByIPI)
			}
			if l.Severity != "corrected" || !createdAt.MatchString(l.CreatedAt) || len(l.Sections) == 0 {
				t.Errorf("line %+v", l)
			}
		}
		waitFor(t, 15*time.Second, func() string { return "records_cleared 8" }, func() bool {
			counters, _ := tb.status()["counters"].(map[string]any)
			return counters["records_cleared"] == "8"
		})
		if n := tb.totalPending(0, 1, 2, 3); n != 0 {
			t.Errorf("%d records still pending", n)
		}
		text := runCmd(t, client, "status", "--xen", tb.xen, "--token-file", tb.tokensPath)
		for _, pattern := range []string{`pCPUs: 4 \(4 connected\)`, `dom0: attached`, `(?m)^\s*records_cleared\s+8$`} {
			if !regexp.MustCompile(pattern).MatchString(text.stdout) {
				t.Errorf("status text lacks %s:\n%s", pattern, text.stdout)
			}
		}
		if code := dom0.stop(10 * time.Second); code != 0 {
			t.Errorf("dom0 exit %d after SIGINT", code)
		}
		_, stderr := dom0.output()
		if !regexp.MustCompile(`(?m)^xenmca-go dom0: stopped \(SIGINT\): 8 records logged, 0 duplicates, 8 cleared.*\n$`).MatchString(stderr) {
			t.Errorf("stderr: %s", stderr)
		}
	})

	t.Run("dom0 --max with --out takes what was queued before it attached and leaves the rest", func(t *testing.T) {
		ids := tb.inject(3, "cmc", 5)
		out := filepath.Join(t.TempDir(), "dom0.jsonl")
		first := runCmd(t, client, "dom0", "--xen", tb.xen, "--token-file", tb.tokensPath, "--max", "3", "--cpe-poll", "0", "--out", out)
		if first.code != 0 || first.stdout != "" {
			t.Fatalf("exit %d, stdout %q, stderr %s", first.code, first.stdout, first.stderr)
		}
		if n := tb.pending(3)["RECORD_TYPE_CMC"]; n != 2 {
			t.Errorf("%d CMC pending on pCPU 3 after --max 3, want 2", n)
		}
		second := runCmd(t, client, "dom0", "--xen", tb.xen, "--token-file", tb.tokensPath, "--max", "2", "--cpe-poll", "0", "--out", out)
		if second.code != 0 {
			t.Fatalf("second run: exit %d: %s", second.code, second.stderr)
		}
		data, _ := os.ReadFile(out)
		if got, want := keys(parseLines(t, string(data))), sorted(expectKeys(3, "CMC", ids)); strings.Join(got, " ") != strings.Join(want, " ") {
			t.Errorf("logged %v, injected %v", got, want)
		}
		if n := tb.totalPending(3); n != 0 {
			t.Errorf("%d records still pending", n)
		}
	})

	t.Run("identities are refused with exit 2 and one line", func(t *testing.T) {
		dir := t.TempDir()
		operatorAsDom0 := filepath.Join(dir, "operator-as-dom0.json")
		os.WriteFile(operatorAsDom0, []byte(fmt.Sprintf(`{"dom0": %q}`, tb.tokens["operator"])), 0o600)
		unknown := filepath.Join(dir, "unknown.yaml")
		os.WriteFile(unknown, []byte("dom0: not-a-known-token\noperator: not-a-known-token\n"), 0o600)
		for _, c := range []struct {
			argv []string
			line string
		}{
			{[]string{"dom0", "--xen", tb.xen, "--token-file", operatorAsDom0}, `xenmca-go dom0: error: AttachDom0 refused: PERMISSION_DENIED \[IDENTITY_NOT_ALLOWED\].*`},
			{[]string{"dom0", "--xen", tb.xen, "--token-file", unknown, "--cpe-poll", "0"}, `xenmca-go dom0: error: AttachDom0 refused: UNAUTHENTICATED \[INVALID_TOKEN\].*`},
			{[]string{"status", "--xen", tb.xen, "--token-file", unknown}, `xenmca-go status: error: ` + regexp.QuoteMeta(tb.xen) + `: UNAUTHENTICATED \[INVALID_TOKEN\]: DescribeHypervisor: .*`},
		} {
			r := runCmd(t, client, c.argv...)
			stderrLines := strings.Split(strings.TrimSuffix(r.stderr, "\n"), "\n")
			last := stderrLines[len(stderrLines)-1]
			if r.code != 2 || r.stdout != "" || !regexp.MustCompile("^"+c.line+"$").MatchString(last) || strings.Count(r.stderr, ": error: ") != 1 {
				t.Errorf("%q: exit %d, stdout %q, stderr %q", c.argv, r.code, r.stdout, r.stderr)
			}
		}
	})
}

func TestLiveWithMutualTLS(t *testing.T) {
	tb := startTestbed(t, 2, true)

	status := runCmd(t, client, append([]string{"status", "--xen", tb.xen, "--json"}, tb.credentials("operator")...)...)
	if status.code != 0 || !strings.Contains(status.stdout, `"connected": true`) {
		t.Fatalf("status with the operator's certificate: exit %d: %s %s", status.code, status.stdout, status.stderr)
	}

	ids := tb.inject(1, "cmc", 3)
	dom0 := runCmd(t, client, append([]string{"dom0", "--xen", tb.xen, "--max", "3", "--cpe-poll", "0"}, tb.credentials("dom0")...)...)
	if dom0.code != 0 {
		t.Fatalf("dom0 with dom0's certificate: exit %d: %s", dom0.code, dom0.stderr)
	}
	lines := parseLines(t, dom0.stdout)
	if got, want := keys(lines), sorted(expectKeys(1, "CMC", ids)); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("logged %v, injected %v", got, want)
	}
	if n := tb.totalPending(0, 1); n != 0 {
		t.Errorf("%d records still pending", n)
	}

	refused := runCmd(t, client, append([]string{"dom0", "--xen", tb.xen}, tb.credentials("operator")...)...)
	if refused.code != 2 || !regexp.MustCompile(`(?m)^xenmca-go dom0: error: AttachDom0 refused: PERMISSION_DENIED.*\n$`).MatchString(refused.stderr) {
		t.Errorf("operator's certificate as dom0: exit %d: %s", refused.code, refused.stderr)
	}
	plaintext := runCmd(t, client, "status", "--xen", tb.xen, "--timeout", "3000")
	if plaintext.code != 2 || !regexp.MustCompile(`^xenmca-go status: error: .*(UNAVAILABLE|DEADLINE_EXCEEDED).*\n$`).MatchString(plaintext.stderr) {
		t.Errorf("plaintext: exit %d: %q", plaintext.code, plaintext.stderr)
	}
}
