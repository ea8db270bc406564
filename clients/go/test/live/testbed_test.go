package live

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// client is the xenmca-go binary, built once by TestMain.
var client string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "xenmca-go-live-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	client = filepath.Join(dir, "xenmca-go")
	build := exec.Command("go", "build", "-o", client, "xenmca.dev/clients/go/cmd/xenmca-go")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building xenmca-go:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// findXenmca is the xenmca command, or skips the test (fails it where the Go
// client's tests are required).
func findXenmca(t *testing.T) string {
	t.Helper()
	if path, err := exec.LookPath("xenmca"); err == nil {
		return path
	}
	if path := os.Getenv("XENMCA_BIN"); path != "" {
		return path
	}
	if strings.Contains(os.Getenv("XENMCA_CLIENTS"), "go") {
		t.Fatal("xenmca not found: put the project venv's bin on PATH or set XENMCA_BIN ($XENMCA_CLIENTS asks for the Go client's tests)")
	}
	t.Skip("skipping the live tests: xenmca is not on PATH and $XENMCA_BIN is not set (activate the project venv to run them)")
	return ""
}

// proc is a child process whose output is collected.
type proc struct {
	cmd    *exec.Cmd
	mu     sync.Mutex
	stdout bytes.Buffer
	stderr bytes.Buffer
	done   chan struct{}
	err    error
}

type lockedWriter struct {
	mu  *sync.Mutex
	buf *bytes.Buffer
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.Write(p)
}

func start(t *testing.T, name string, args ...string) *proc {
	t.Helper()
	p := &proc{cmd: exec.Command(name, args...), done: make(chan struct{})}
	p.cmd.Stdout = lockedWriter{&p.mu, &p.stdout}
	p.cmd.Stderr = lockedWriter{&p.mu, &p.stderr}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() { p.stop(10 * time.Second) })
	return p
}

func (p *proc) output() (string, string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stdout.String(), p.stderr.String()
}

func (p *proc) running() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// stop sends SIGINT, then SIGKILL after grace; it returns the exit status.
func (p *proc) stop(grace time.Duration) int {
	if p.running() {
		p.cmd.Process.Signal(syscall.SIGINT)
		select {
		case <-p.done:
		case <-time.After(grace):
			p.cmd.Process.Kill()
			<-p.done
		}
	}
	return p.cmd.ProcessState.ExitCode()
}

// wait waits for the process to exit by itself within timeout.
func (p *proc) wait(t *testing.T, timeout time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
		return p.cmd.ProcessState.ExitCode()
	case <-time.After(timeout):
		_, stderr := p.output()
		t.Fatalf("%s did not exit within %s; stderr: %s", p.cmd.Path, timeout, stderr)
		return -1
	}
}

// result is a finished command.
type result struct {
	code           int
	stdout, stderr string
}

func runCmd(t *testing.T, name string, args ...string) result {
	t.Helper()
	p := start(t, name, args...)
	code := p.wait(t, 60*time.Second)
	stdout, stderr := p.output()
	return result{code, stdout, stderr}
}

// waitFor polls check every 100 ms until it returns true; fails after timeout.
func waitFor(t *testing.T, timeout time.Duration, what func() string, check func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !check() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// testbed is pCPU hosts and a coordinator without dom0.
type testbed struct {
	t          *testing.T
	xenmca     string
	dir        string
	tokensPath string
	tokens     map[string]string
	certs      string // with TLS: the certificates' folder
	pcpus      map[string]string
	xen        string
}

// credentials are the flags with which identity proves itself: its certificate, or the token file.
func (tb *testbed) credentials(identity string) []string {
	if tb.certs != "" {
		return []string{"--tls-cert", filepath.Join(tb.certs, identity+".crt"), "--tls-key", filepath.Join(tb.certs, identity+".key"),
			"--tls-ca", filepath.Join(tb.certs, "ca.crt")}
	}
	return []string{"--token-file", tb.tokensPath}
}

func readJSONWhenReady(t *testing.T, file string, p *proc, what string, into any) {
	t.Helper()
	waitFor(t, 60*time.Second, func() string { _, e := p.output(); return what + " ready: " + e }, func() bool {
		data, err := os.ReadFile(file)
		if err == nil && json.Unmarshal(data, into) == nil {
			return true
		}
		if !p.running() {
			_, stderr := p.output()
			t.Fatalf("%s exited before it was ready: %s", what, stderr)
		}
		return false
	})
}

// startTestbed starts `xenmca serve pcpu` and `xenmca serve xen` on loopback
// with fresh random tokens, or with tls mutual TLS only (no token file).
func startTestbed(t *testing.T, pcpus int, tls bool) *testbed {
	xenmca := findXenmca(t)
	tb := &testbed{t: t, xenmca: xenmca, dir: t.TempDir(), tokens: map[string]string{}}
	for _, identity := range []string{"dom0", "operator", "xen"} {
		b := make([]byte, 18)
		rand.Read(b)
		tb.tokens[identity] = base64.RawURLEncoding.EncodeToString(b)
	}
	tb.tokensPath = filepath.Join(tb.dir, "tokens.json")
	data, _ := json.Marshal(tb.tokens)
	if err := os.WriteFile(tb.tokensPath, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if tls {
		tb.certs = filepath.Join(tb.dir, "certs")
		if r := runCmd(t, xenmca, "certs", "generate", "--dir", tb.certs); r.code != 0 {
			t.Fatalf("xenmca certs generate: %s", r.stderr)
		}
	}
	pcpuReady := filepath.Join(tb.dir, "pcpus.json")
	pcpuProc := start(t, xenmca, append([]string{"serve", "pcpu", "--pcpus", fmt.Sprintf("0-%d", pcpus-1), "--host", "127.0.0.1",
		"--base-port", "0", "--ready-file", pcpuReady}, tb.credentials("pcpu")...)...)
	readJSONWhenReady(t, pcpuReady, pcpuProc, "xenmca serve pcpu", &tb.pcpus)
	xenReady := filepath.Join(tb.dir, "xen.json")
	xenProc := start(t, xenmca, append(append([]string{"serve", "xen", "--listen", "127.0.0.1:0", "--inventory", pcpuReady},
		tb.credentials("xen")...), "--ready-file", xenReady, "--throttle-preset", "fast")...)
	var ready struct{ Address string }
	readJSONWhenReady(t, xenReady, xenProc, "xenmca serve xen", &ready)
	tb.xen = ready.Address
	// The cleanups run last-registered first: the coordinator stops before the pCPUs.
	return tb
}

var injected = regexp.MustCompile(`accepted (\d+), stored (\d+), overflowed (\d+), ids (\d+)-(\d+)`)

// inject runs `xenmca inject` on one pCPU and returns the record ids it reported.
func (tb *testbed) inject(pcpu int, kind string, count int) []string {
	tb.t.Helper()
	r := runCmd(tb.t, tb.xenmca, append([]string{"inject", "--pcpu", tb.pcpus[strconv.Itoa(pcpu)], "--type", kind,
		"--count", strconv.Itoa(count)}, tb.credentials("operator")...)...)
	m := injected.FindStringSubmatch(r.stdout)
	if r.code != 0 || m == nil || m[2] != strconv.Itoa(count) || m[3] != "0" {
		tb.t.Fatalf("xenmca inject (exit %d): %s %s", r.code, r.stdout, r.stderr)
	}
	first, _ := strconv.ParseUint(m[4], 10, 64)
	last, _ := strconv.ParseUint(m[5], 10, 64)
	var ids []string
	for id := first; id <= last; id++ {
		ids = append(ids, strconv.FormatUint(id, 10))
	}
	return ids
}

// pending is `xenmca status --pcpu ... --json`: records pending per type on one pCPU.
func (tb *testbed) pending(pcpu int) map[string]int {
	tb.t.Helper()
	r := runCmd(tb.t, tb.xenmca, append([]string{"status", "--pcpu", tb.pcpus[strconv.Itoa(pcpu)], "--json"}, tb.credentials("operator")...)...)
	if r.code != 0 {
		tb.t.Fatalf("xenmca status --pcpu: %s", r.stderr)
	}
	var state struct {
		Types []struct {
			Type    string
			Pending any
		}
	}
	if err := json.Unmarshal([]byte(r.stdout), &state); err != nil {
		tb.t.Fatalf("xenmca status --pcpu --json: %v: %s", err, r.stdout)
	}
	out := map[string]int{}
	for _, ty := range state.Types {
		n, _ := strconv.Atoi(fmt.Sprint(ty.Pending))
		out[ty.Type] += n
	}
	return out
}

// totalPending adds up what is pending on the pCPUs.
func (tb *testbed) totalPending(pcpus ...int) int {
	n := 0
	for _, pcpu := range pcpus {
		for _, count := range tb.pending(pcpu) {
			n += count
		}
	}
	return n
}

// status is the Go client's `status --json` as the operator, decoded.
func (tb *testbed) status() map[string]any {
	tb.t.Helper()
	r := runCmd(tb.t, client, append([]string{"status", "--xen", tb.xen, "--json"}, tb.credentials("operator")...)...)
	if r.code != 0 {
		tb.t.Fatalf("xenmca-go status: exit %d: %s", r.code, r.stderr)
	}
	var state map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &state); err != nil {
		tb.t.Fatalf("status --json is not JSON: %v: %s", err, r.stdout)
	}
	return state
}

// logLine is one record of the dom0 log.
type logLine struct {
	Pcpu      int    `json:"pcpu"`
	RecordID  string `json:"record_id"`
	Type      string `json:"type"`
	Severity  string `json:"severity"`
	CreatedAt string `json:"created_at"`
	Sections  []any  `json:"sections"`
	ByIPI     *bool  `json:"by_ipi"`
}

func parseLines(t *testing.T, text string) []logLine {
	t.Helper()
	var lines []logLine
	for _, raw := range strings.Split(strings.TrimSuffix(text, "\n"), "\n") {
		if raw == "" {
			continue
		}
		var line logLine
		if err := json.Unmarshal([]byte(raw), &line); err != nil {
			t.Fatalf("not a JSON line: %q", raw)
		}
		lines = append(lines, line)
	}
	return lines
}

func completeLines(text string) int {
	return strings.Count(text, "\n")
}
