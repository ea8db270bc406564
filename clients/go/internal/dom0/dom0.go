// Package dom0 is a minimal dom0: attach to the coordinator's virtual
// interrupt line and, for each interrupt, GET -> write the record to the log
// -> CLEAR that record id. CPE is not injected (the design settled on
// polling), so it is polled: GET CPE until SAL status -5, every CPEPoll.
//
// The order is the point: CLEAR is sent only after the log write has been
// flushed, and it names the record that was read, so the coordinator never
// clears a record this dom0 does not have. A record whose CLEAR fails stays
// in firmware and is delivered again; the log keeps it once (by pCPU + record
// id). It is the Node client's src/dom0.js, in Go.
package dom0

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"google.golang.org/grpc"

	"xenmca.dev/clients/go/internal/names"
	"xenmca.dev/clients/go/internal/render"
	"xenmca.dev/clients/go/internal/rpcerr"

	hypervisorv1 "xenmca.dev/clients/go/gen/xenmca/hypervisor/v1"
	recordv1 "xenmca.dev/clients/go/gen/xenmca/record/v1"
)

// Client is what the dom0 needs of the coordinator (*client.Client has it).
type Client interface {
	Address() string
	WaitForReady(ctx context.Context) error
	GetStateInfo(ctx context.Context, t recordv1.RecordType) (*hypervisorv1.GetStateInfoResponse, error)
	ClearStateInfo(ctx context.Context, t recordv1.RecordType, recordID uint64) (*hypervisorv1.ClearStateInfoResponse, error)
	AttachDom0(ctx context.Context, instance string) (grpc.ServerStreamingClient[hypervisorv1.AttachDom0Response], error)
}

// Error ends the dom0: exit status 2 (could not run) or 1 (failed while running).
type Error struct {
	Message  string
	ExitCode int
}

func (e *Error) Error() string { return e.Message }

// Options of a Dom0.
type Options struct {
	// Write appends one line to the log and returns once it is durable (flushed).
	Write func(line string) error
	// Log reports progress and warnings (stderr).
	Log func(message string)
	// Max stops the dom0 after this many records (0: no limit).
	Max int
	// CPEPoll is the CPE poll interval (0: no polling).
	CPEPoll time.Duration
	// ConnectTimeout bounds the wait for the first connection.
	ConnectTimeout time.Duration
	// Instance names this dom0 to the coordinator.
	Instance string
	// Raw adds the raw SAL bytes (base64) to each line.
	Raw bool
	// AlreadyLogged are "pcpu:record_id" keys already in the log.
	AlreadyLogged []string
}

// Counters count what the dom0 did.
type Counters struct {
	Interrupts, Attaches, Logged, Duplicates, Cleared, Polls, CallErrors int
}

// Outcome of one GET -> log -> CLEAR pass.
type Outcome string

// The outcomes of a pass.
const (
	Logged      Outcome = "logged"      // a new record, written and cleared
	Duplicate   Outcome = "duplicate"   // already in the log (delivered again), cleared again
	Nothing     Outcome = "nothing"     // GET answered -5
	Unreachable Outcome = "unreachable" // GET answered -3: the coordinator keeps the entry
	NotCleared  Outcome = "not_cleared" // written, but CLEAR answered -3 or -5
	Held        Outcome = "held"        // a new record past Max: left in firmware for the next dom0
	Failed      Outcome = "failed"      // an RPC failed
)

const (
	backoffInitial = 100 * time.Millisecond
	backoffMax     = 5 * time.Second
	cpe            = recordv1.RecordType_RECORD_TYPE_CPE
)

// Dom0 is one run of the dom0 loop.
type Dom0 struct {
	client Client
	opts   Options

	mu         sync.Mutex
	counters   Counters
	logged     map[string]bool
	uncleared  map[string]bool
	writing    int
	stopReason string
	stopping   bool
	fatal      *Error
	session    int
	cancel     context.CancelFunc // of the current attach
	chains     map[recordv1.RecordType]*chain

	stopped chan struct{} // closed by Stop
	passes  sync.WaitGroup
}

// New makes a dom0 that will talk to client.
func New(client Client, opts Options) *Dom0 {
	if opts.Log == nil {
		opts.Log = func(string) {}
	}
	d := &Dom0{
		client:    client,
		opts:      opts,
		logged:    map[string]bool{},
		uncleared: map[string]bool{},
		chains:    map[recordv1.RecordType]*chain{},
		stopped:   make(chan struct{}),
	}
	for _, key := range opts.AlreadyLogged {
		d.logged[key] = true
	}
	return d
}

// Stop asks the dom0 to stop: passes in progress finish, no new ones start.
func (d *Dom0) Stop(reason string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.stopping {
		return
	}
	d.stopping = true
	d.stopReason = reason
	if d.cancel != nil {
		d.cancel()
	}
	close(d.stopped)
}

func (d *Dom0) isStopping() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.stopping
}

// Counters are a copy of the counters so far.
func (d *Dom0) Counters() Counters {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.counters
}

// Run runs until Max records, Stop, or a fatal error (*Error). It returns why it stopped.
func (d *Dom0) Run() (string, Counters, error) {
	ctx, cancel := context.WithTimeout(context.Background(), d.opts.ConnectTimeout)
	go func() {
		select {
		case <-d.stopped:
			cancel()
		case <-ctx.Done():
		}
	}()
	err := d.client.WaitForReady(ctx)
	cancel()
	if err != nil && !d.isStopping() {
		return "", d.Counters(), &Error{
			Message:  fmt.Sprintf("cannot reach coordinator %s within %d ms: %s", d.client.Address(), d.opts.ConnectTimeout.Milliseconds(), err),
			ExitCode: 2,
		}
	}
	var loops sync.WaitGroup
	loops.Add(1)
	go func() { defer loops.Done(); d.attachLoop() }()
	if d.opts.CPEPoll > 0 {
		loops.Add(1)
		go func() { defer loops.Done(); d.pollLoop() }()
	}
	loops.Wait()
	// Passes in progress finish their GET -> write -> CLEAR.
	d.passes.Wait()
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.fatal != nil {
		return d.stopReason, d.counters, d.fatal
	}
	return d.stopReason, d.counters, nil
}

// -- the virtual interrupt line ---------------------------------------------

func (d *Dom0) attachLoop() {
	backoff := backoffInitial
	for {
		d.mu.Lock()
		if d.stopping {
			d.mu.Unlock()
			return
		}
		d.session++
		session := d.session
		d.counters.Attaches++
		first := d.counters.Attaches == 1
		ctx, cancel := context.WithCancel(context.Background())
		d.cancel = cancel
		d.mu.Unlock()

		if first {
			d.opts.Log(fmt.Sprintf("attaching to coordinator %s as %s", d.client.Address(), d.opts.Instance))
		}
		delivered, err := d.stream(ctx, session)
		cancel()
		if d.isStopping() {
			return
		}
		if err != nil && rpcerr.IsIdentity(err) {
			d.mu.Lock()
			d.fatal = &Error{Message: "AttachDom0 refused: " + rpcerr.Describe(err), ExitCode: 2}
			d.mu.Unlock()
			d.Stop("refused")
			return
		}
		why := "stream ended (another dom0 attached, or the coordinator stopped)"
		if err != nil {
			why = rpcerr.Describe(err)
		}
		if delivered {
			backoff = backoffInitial
		}
		d.opts.Log(fmt.Sprintf("detached: %s; re-attaching in %d ms", why, backoff.Milliseconds()))
		d.sleep(backoff)
		backoff = min(backoffMax, backoff*2)
	}
}

// stream reads one AttachDom0 stream until it ends; nil for a clean end or a cancel.
func (d *Dom0) stream(ctx context.Context, session int) (delivered bool, err error) {
	stream, err := d.client.AttachDom0(ctx, d.opts.Instance)
	for err == nil {
		var interrupt *hypervisorv1.AttachDom0Response
		interrupt, err = stream.Recv()
		if err == nil {
			delivered = true
			d.onInterrupt(session, interrupt)
		}
	}
	if errors.Is(err, io.EOF) || ctx.Err() != nil {
		return delivered, nil
	}
	return delivered, err
}

func (d *Dom0) onInterrupt(session int, interrupt *hypervisorv1.AttachDom0Response) {
	d.mu.Lock()
	d.counters.Interrupts++
	d.mu.Unlock()
	t := interrupt.GetType()
	d.serial(t, func() {
		// An interrupt from a stream that broke: the coordinator re-injects what matters.
		d.mu.Lock()
		current := d.session
		d.mu.Unlock()
		if session != current {
			return
		}
		d.handleOnce(t)
	})
}

// -- polled CPE -----------------------------------------------------------------

func (d *Dom0) pollLoop() {
	for !d.isStopping() {
		<-d.serial(cpe, func() { d.drain(cpe) })
		d.mu.Lock()
		d.counters.Polls++
		d.mu.Unlock()
		d.sleep(d.opts.CPEPoll)
	}
}

// drain runs passes until one does not clear a record.
func (d *Dom0) drain(t recordv1.RecordType) {
	for {
		outcome := d.handleOnce(t)
		if d.isStopping() || (outcome != Logged && outcome != Duplicate) {
			return
		}
	}
}

// -- one record -------------------------------------------------------------------

// handleOnce is one GET -> write -> CLEAR pass for type t.
func (d *Dom0) handleOnce(t recordv1.RecordType) Outcome {
	if d.isStopping() {
		return Nothing
	}
	label := names.TypeLabel(names.RecordTypeName(t))
	if _, err := names.RequestType(t); err != nil {
		return d.callFailed(label+" GET", err)
	}
	got, err := d.client.GetStateInfo(context.Background(), t)
	if err != nil {
		return d.callFailed(label+" GET", err)
	}
	switch got.GetSalStatus() {
	case names.SalOK:
	case names.SalNoInformation:
		return Nothing
	case names.SalCallError:
		return Unreachable
	default:
		d.opts.Log(fmt.Sprintf("%s GET: unexpected SAL status %d", label, got.GetSalStatus()))
		return Nothing
	}
	record := got.GetRecord()
	key := fmt.Sprintf("%d:%d", record.GetPcpu(), record.GetRecordId())

	d.mu.Lock()
	isNew := !d.logged[key]
	if isNew {
		// Writes of other types may be in progress: count them against Max too.
		if d.opts.Max > 0 && d.counters.Logged+d.writing >= d.opts.Max {
			d.mu.Unlock()
			return Held
		}
		d.writing++
	} else {
		d.counters.Duplicates++
	}
	d.mu.Unlock()

	if isNew {
		err := d.opts.Write(render.RecordLine(record, got.GetByIpi(), d.opts.Raw))
		d.mu.Lock()
		d.writing--
		if err != nil {
			// Not durable, so not cleared: the record stays in firmware.
			d.fatal = &Error{Message: fmt.Sprintf("cannot write record %s to the log: %s", key, err), ExitCode: 1}
			d.mu.Unlock()
			d.Stop("log write failed")
			return Failed
		}
		d.logged[key] = true
		d.uncleared[key] = true
		d.counters.Logged++
		d.mu.Unlock()
	}

	cleared, err := d.client.ClearStateInfo(context.Background(), t, record.GetRecordId())
	if err != nil {
		return d.callFailed(fmt.Sprintf("%s CLEAR %s", label, key), err)
	}
	if cleared.GetSalStatus() != names.SalOK {
		d.opts.Log(fmt.Sprintf("%s CLEAR %s: SAL status %d; it will be delivered again", label, key, cleared.GetSalStatus()))
		return NotCleared
	}
	d.mu.Lock()
	d.counters.Cleared++
	delete(d.uncleared, key)
	done := d.opts.Max > 0 && d.counters.Logged >= d.opts.Max && len(d.uncleared) == 0
	d.mu.Unlock()
	if done {
		d.Stop(fmt.Sprintf("%d records logged", d.opts.Max))
	}
	if isNew {
		return Logged
	}
	return Duplicate
}

func (d *Dom0) callFailed(what string, err error) Outcome {
	d.mu.Lock()
	d.counters.CallErrors++
	d.mu.Unlock()
	d.opts.Log(fmt.Sprintf("%s failed: %s", what, rpcerr.Describe(err)))
	return Failed
}

// -- helpers ------------------------------------------------------------------------

// chain runs the passes of one record type one after another (vCPU0 handles
// one at a time), in the order they were asked for.
type chain struct {
	mu      sync.Mutex
	queue   []func()
	running bool
}

// serial runs fn after the previous pass of the same type; the channel closes when fn has run.
func (d *Dom0) serial(t recordv1.RecordType, fn func()) <-chan struct{} {
	done := make(chan struct{})
	d.passes.Add(1)
	d.mu.Lock()
	c := d.chains[t]
	if c == nil {
		c = &chain{}
		d.chains[t] = c
	}
	d.mu.Unlock()
	c.mu.Lock()
	c.queue = append(c.queue, func() {
		defer d.passes.Done()
		defer close(done)
		fn()
	})
	if !c.running {
		c.running = true
		go c.run()
	}
	c.mu.Unlock()
	return done
}

func (c *chain) run() {
	for {
		c.mu.Lock()
		if len(c.queue) == 0 {
			c.running = false
			c.mu.Unlock()
			return
		}
		next := c.queue[0]
		c.queue = c.queue[1:]
		c.mu.Unlock()
		next()
	}
}

// sleep waits for dur, or less if Stop is called.
func (d *Dom0) sleep(dur time.Duration) {
	timer := time.NewTimer(dur)
	defer timer.Stop()
	select {
	case <-timer.C:
	case <-d.stopped:
	}
}
