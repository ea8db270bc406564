package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// run is Main with captured output.
func run(t *testing.T, argv ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := Main(argv, IO{Stdout: &stdout, Stderr: &stderr})
	return code, stdout.String(), stderr.String()
}

func TestUsageErrorsAreOneLineWithExit2(t *testing.T) {
	cases := []struct {
		argv []string
		want string
	}{
		{nil, "xenmca-go: error: missing command (status or dom0); see --help"},
		{[]string{"foo"}, "xenmca-go: error: unknown command 'foo' (choose status or dom0)"},
		{[]string{"status"}, "xenmca-go status: error: --xen HOST:PORT is required"},
		{[]string{"status", "--xen"}, "xenmca-go status: error: Option '--xen <value>' argument missing"},
		{[]string{"status", "--xen", "--json"}, "xenmca-go status: error: Option '--xen' argument is ambiguous. Did you forget to specify the option argument for '--xen'? To specify an option argument starting with a dash use '--xen=-XYZ'."},
		{[]string{"status", "--xen=a:1", "--bogus"}, "xenmca-go status: error: Unknown option '--bogus'"},
		{[]string{"status", "-hx"}, "xenmca-go status: error: Unknown option '-x'"},
		{[]string{"status", "--json=1", "--xen", "a:1"}, "xenmca-go status: error: Option '--json' does not take an argument"},
		{[]string{"status", "--help=x"}, "xenmca-go status: error: Option '-h, --help' does not take an argument"},
		{[]string{"status", "--xen", "a:1", "--", "pos"}, "xenmca-go status: error: Unexpected argument 'pos'. This command does not take positional arguments"},
		{[]string{"status", "--xen", "foo"}, "xenmca-go status: error: --xen: address 'foo' is not HOST:PORT"},
		{[]string{"status", "--xen", "a:99999"}, "xenmca-go status: error: --xen: address 'a:99999' is not HOST:PORT"},
		{[]string{"status", "--xen", "a:1", "--timeout", "0"}, "xenmca-go status: error: --timeout must be at least 1 ms"},
		{[]string{"status", "--xen", "a:1", "--tls-cert", "c"}, "xenmca-go status: error: --tls-cert, --tls-key and --tls-ca go together (all three or none)"},
		{[]string{"status", "--xen", "a:1", "--max", "3"}, "xenmca-go status: error: Unknown option '--max'"},
		{[]string{"dom0", "--xen", "a:1", "--max", "1.5"}, "xenmca-go dom0: error: --max must be a whole number >= 0 (got '1.5')"},
		{[]string{"dom0", "--xen", "a:1", "--max=-1"}, "xenmca-go dom0: error: --max must be a whole number >= 0 (got '-1')"},
		{[]string{"dom0", "--xen", "a:1", "--max", "99999999999999999"}, "xenmca-go dom0: error: --max must be a whole number >= 0 (got '99999999999999999')"},
		{[]string{"dom0", "--xen", "a:1", "--cpe-poll", "x"}, "xenmca-go dom0: error: --cpe-poll must be a whole number >= 0 (got 'x')"},
		{[]string{"dom0", "--xen", "a:1", "--token-file", "/nonexistent/tokens.json"}, "xenmca-go dom0: error: /nonexistent/tokens.json: cannot read token file: ENOENT"},
		{[]string{"status", "--xen", "a:1", "--tls-cert", "/nonexistent/c", "--tls-key", "k", "--tls-ca", "ca"}, "xenmca-go status: error: --tls-cert: cannot read /nonexistent/c: ENOENT"},
	}
	for _, c := range cases {
		code, stdout, stderr := run(t, c.argv...)
		if code != 2 || stdout != "" || stderr != c.want+"\n" {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want exit 2 and %q", c.argv, code, stdout, stderr, c.want)
		}
	}
}

func TestHelp(t *testing.T) {
	for _, argv := range [][]string{{"help"}, {"-h"}, {"--help"}, {"status", "-h", "--xen", "foo"}, {"dom0", "--xen", "a:1", "--help"}} {
		code, stdout, stderr := run(t, argv...)
		if code != 0 || stdout != Usage+"\n" || stderr != "" {
			t.Errorf("%q: exit %d, stderr %q", argv, code, stderr)
		}
	}
	if !strings.Contains(Usage, "(default 10000)") || !strings.HasPrefix(Usage, "usage: xenmca-go <command> [options]") {
		t.Errorf("usage: %s", Usage)
	}
}

func TestParsedOptions(t *testing.T) {
	command, opts, err := ParseCommandLine([]string{"dom0", "--xen=[::1]:50051", "--max", "3", "--cpe-poll", "0",
		"--out", "log.jsonl", "--raw", "--instance", "me", "--timeout", "250", "--token-file", "t.json", "--max", "4"})
	if err != nil || command != "dom0" {
		t.Fatal(command, err)
	}
	if opts.Xen != "[::1]:50051" || opts.Max != 4 || opts.CPEPollMs != 0 || opts.Out != "log.jsonl" || !opts.Raw ||
		opts.Instance != "me" || opts.TimeoutMs != 250 || opts.TokenFile != "t.json" || opts.ConnectTimeoutMs != 10000 || opts.TLS != nil {
		t.Errorf("%+v", opts)
	}
	_, opts, err = ParseCommandLine([]string{"status", "--xen", "h:1", "--json", "--tls-cert", "c", "--tls-key", "k", "--tls-ca", "a"})
	if err != nil || !opts.JSON || opts.TLS == nil || *opts.TLS != (TLSPaths{"c", "k", "a"}) || opts.TimeoutMs != 10000 {
		t.Errorf("%+v %v", opts, err)
	}
	_, opts, _ = ParseCommandLine([]string{"dom0", "--xen", "h:1"})
	if opts.CPEPollMs != 1000 || opts.Max != 0 || !strings.HasPrefix(opts.Instance, "xenmca-go-") {
		t.Errorf("defaults: %+v", opts)
	}
}

func TestTLSFileWithoutPEM(t *testing.T) {
	dir := t.TempDir()
	cert := filepath.Join(dir, "c.crt")
	if err := os.WriteFile(cert, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := run(t, "status", "--xen", "a:1", "--tls-cert", cert, "--tls-key", cert, "--tls-ca", cert)
	if code != 2 || stderr != "xenmca-go status: error: --tls-cert: "+cert+" holds no PEM certificate\n" {
		t.Errorf("exit %d: %q", code, stderr)
	}
}

func TestUnreachableCoordinatorIsExit2(t *testing.T) {
	code, _, stderr := run(t, "status", "--xen", "127.0.0.1:1")
	if code != 2 || !strings.HasPrefix(stderr, "xenmca-go status: error: 127.0.0.1:1: UNAVAILABLE: ") || strings.Count(stderr, "\n") != 1 {
		t.Errorf("status: exit %d: %q", code, stderr)
	}
	code, _, stderr = run(t, "dom0", "--xen", "127.0.0.1:1", "--connect-timeout", "200")
	want := "xenmca-go dom0: error: cannot reach coordinator 127.0.0.1:1 within 200 ms: Failed to connect before the deadline\n"
	if code != 2 || stderr != want {
		t.Errorf("dom0: exit %d: %q", code, stderr)
	}
}
