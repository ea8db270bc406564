package dom0

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	hypervisorv1 "xenmca.dev/clients/go/gen/xenmca/hypervisor/v1"
	recordv1 "xenmca.dev/clients/go/gen/xenmca/record/v1"
)

// fakeXen is a coordinator in memory: queues of records per type, and a
// journal of what happened (writes come from the test's log writer).
type fakeXen struct {
	mu        sync.Mutex
	queues    map[recordv1.RecordType][]*recordv1.ErrorRecord
	journal   []string
	attachErr error
	clearFail int // CLEARs that answer -3 before they work
	interrupt chan *hypervisorv1.AttachDom0Response
}

func newFakeXen() *fakeXen {
	return &fakeXen{queues: map[recordv1.RecordType][]*recordv1.ErrorRecord{}, interrupt: make(chan *hypervisorv1.AttachDom0Response, 100)}
}

func (f *fakeXen) add(t recordv1.RecordType, pcpu uint32, id uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.queues[t] = append(f.queues[t], &recordv1.ErrorRecord{Pcpu: pcpu, RecordId: id, Type: t, Severity: recordv1.Severity_SEVERITY_CORRECTED})
}

func (f *fakeXen) note(format string, args ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.journal = append(f.journal, fmt.Sprintf(format, args...))
}

func (f *fakeXen) Address() string                    { return "fake:1" }
func (f *fakeXen) WaitForReady(context.Context) error { return nil }

func (f *fakeXen) GetStateInfo(_ context.Context, t recordv1.RecordType) (*hypervisorv1.GetStateInfoResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.queues[t]) == 0 {
		return &hypervisorv1.GetStateInfoResponse{SalStatus: -5}, nil
	}
	return &hypervisorv1.GetStateInfoResponse{Record: f.queues[t][0], ByIpi: true}, nil
}

func (f *fakeXen) ClearStateInfo(_ context.Context, t recordv1.RecordType, id uint64) (*hypervisorv1.ClearStateInfoResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.clearFail > 0 {
		f.clearFail--
		f.journal = append(f.journal, fmt.Sprintf("clear-failed %d", id))
		return &hypervisorv1.ClearStateInfoResponse{SalStatus: -3}, nil
	}
	q := f.queues[t]
	if len(q) == 0 || q[0].GetRecordId() != id {
		return nil, status.Error(codes.FailedPrecondition, "not the current record")
	}
	f.queues[t] = q[1:]
	f.journal = append(f.journal, fmt.Sprintf("clear %d:%d", q[0].GetPcpu(), id))
	return &hypervisorv1.ClearStateInfoResponse{ClearedRecordId: id}, nil
}

// fakeStream delivers the fake's interrupts until the context ends.
type fakeStream struct {
	grpc.ClientStream
	ctx context.Context
	f   *fakeXen
}

func (s *fakeStream) Recv() (*hypervisorv1.AttachDom0Response, error) {
	select {
	case irq := <-s.f.interrupt:
		return irq, nil
	case <-s.ctx.Done():
		return nil, status.Error(codes.Canceled, "cancelled")
	}
}

func (f *fakeXen) AttachDom0(ctx context.Context, _ string) (grpc.ServerStreamingClient[hypervisorv1.AttachDom0Response], error) {
	if f.attachErr != nil {
		return nil, f.attachErr
	}
	return &fakeStream{ctx: ctx, f: f}, nil
}

func (f *fakeXen) raise(t recordv1.RecordType) {
	f.interrupt <- &hypervisorv1.AttachDom0Response{Type: t}
}

func (f *fakeXen) pending() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, q := range f.queues {
		n += len(q)
	}
	return n
}

func runAsync(d *Dom0) <-chan error {
	done := make(chan error, 1)
	go func() {
		_, _, err := d.Run()
		done <- err
	}()
	return done
}

func wait(t *testing.T, done <-chan error) error {
	t.Helper()
	select {
	case err := <-done:
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("dom0 did not stop")
		return nil
	}
}

const cmc = recordv1.RecordType_RECORD_TYPE_CMC

func TestWritesBeforeClearingAndStopsAtMax(t *testing.T) {
	f := newFakeXen()
	for id := uint64(1); id <= 3; id++ {
		f.add(cmc, 1, id)
	}
	d := New(f, Options{Write: func(line string) error { f.note("write %s", line[:strings.Index(line, `,"type"`)]); return nil }, Max: 2, Instance: "t"})
	done := runAsync(d)
	f.raise(cmc)
	f.raise(cmc)
	if err := wait(t, done); err != nil {
		t.Fatal(err)
	}
	want := []string{`write {"pcpu":1,"record_id":"1"`, "clear 1:1", `write {"pcpu":1,"record_id":"2"`, "clear 1:2"}
	if strings.Join(f.journal, "|") != strings.Join(want, "|") {
		t.Errorf("journal %q, want %q", f.journal, want)
	}
	if f.pending() != 1 {
		t.Errorf("the record past --max must stay in firmware; pending %d", f.pending())
	}
}

func TestFailedWriteIsNotCleared(t *testing.T) {
	f := newFakeXen()
	f.add(cmc, 0, 9)
	d := New(f, Options{Write: func(string) error { return errors.New("write EPIPE") }, Instance: "t"})
	done := runAsync(d)
	f.raise(cmc)
	var dErr *Error
	if err := wait(t, done); !errors.As(err, &dErr) || dErr.ExitCode != 1 || dErr.Message != "cannot write record 0:9 to the log: write EPIPE" {
		t.Fatalf("got %v", err)
	}
	if f.pending() != 1 || len(f.journal) != 0 {
		t.Errorf("a record not written was cleared: %q", f.journal)
	}
}

func TestRedeliveredRecordIsWrittenOnce(t *testing.T) {
	f := newFakeXen()
	f.add(cmc, 2, 5)
	f.clearFail = 1
	var lines []string
	d := New(f, Options{Write: func(line string) error { lines = append(lines, line); return nil }, Max: 1, Instance: "t"})
	done := runAsync(d)
	f.raise(cmc) // written, CLEAR answers -3
	f.raise(cmc) // delivered again: cleared, not written again
	if err := wait(t, done); err != nil {
		t.Fatal(err)
	}
	if len(lines) != 1 || f.pending() != 0 || d.Counters().Duplicates != 1 {
		t.Errorf("lines %q, pending %d, counters %+v", lines, f.pending(), d.Counters())
	}
}

func TestAlreadyLoggedIsClearedNotWritten(t *testing.T) {
	f := newFakeXen()
	f.add(recordv1.RecordType_RECORD_TYPE_CPE, 3, 1)
	f.add(recordv1.RecordType_RECORD_TYPE_CPE, 3, 2)
	var lines []string
	d := New(f, Options{Write: func(line string) error { lines = append(lines, line); return nil }, Max: 1,
		CPEPoll: 10 * time.Millisecond, AlreadyLogged: []string{"3:1"}, Instance: "t"})
	if err := wait(t, runAsync(d)); err != nil {
		t.Fatal(err)
	}
	if len(lines) != 1 || !strings.Contains(lines[0], `"record_id":"2"`) || f.pending() != 0 {
		t.Errorf("lines %q, pending %d", lines, f.pending())
	}
}

func TestRefusedIdentityIsExit2(t *testing.T) {
	f := newFakeXen()
	f.attachErr = status.Error(codes.PermissionDenied, "AttachDom0: dom0 only")
	d := New(f, Options{Write: func(string) error { return nil }, Instance: "t"})
	var dErr *Error
	if err := wait(t, runAsync(d)); !errors.As(err, &dErr) || dErr.ExitCode != 2 ||
		dErr.Message != "AttachDom0 refused: PERMISSION_DENIED: AttachDom0: dom0 only" {
		t.Fatalf("got %v", err)
	}
}

func TestStopEndsTheRun(t *testing.T) {
	f := newFakeXen()
	d := New(f, Options{Write: func(string) error { return nil }, CPEPoll: time.Hour, Instance: "t"})
	done := runAsync(d)
	d.Stop("SIGINT")
	if err := wait(t, done); err != nil {
		t.Fatal(err)
	}
	if d.stopReason != "SIGINT" {
		t.Errorf("reason %q", d.stopReason)
	}
}
