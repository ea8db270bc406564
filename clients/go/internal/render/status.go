package render

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf16"

	"xenmca.dev/clients/go/internal/jsobj"
	"xenmca.dev/clients/go/internal/names"

	"google.golang.org/protobuf/types/known/durationpb"
	hypervisorv1 "xenmca.dev/clients/go/gen/xenmca/hypervisor/v1"
)

// StatusJSON is `status --json`: the whole DescribeHypervisorResponse as the
// Node client prints it (JSON.stringify(state, null, 2) of proto-loader's
// object). raw is the reply's wire bytes, which give map entries their order;
// nil sorts them.
func StatusJSON(state *hypervisorv1.DescribeHypervisorResponse, raw []byte) string {
	return jsobj.Stringify(jsobj.FromMessage(state.ProtoReflect(), raw), "  ")
}

// StatusLines describe the coordinator's state: pCPUs, vCPU0, dom0, the
// injected types, the queues, the counters and the throttle lines that poll or
// have changed mode.
func StatusLines(state *hypervisorv1.DescribeHypervisorResponse, address string) []string {
	connected := 0
	for _, p := range state.GetPcpus() {
		if p.GetConnected() {
			connected++
		}
	}
	var injected []string
	for _, t := range state.GetInjectedTypes() {
		injected = append(injected, names.TypeLabel(t.String()))
	}
	injectedText := strings.Join(injected, ", ")
	if injectedText == "" {
		injectedText = "-"
	}
	dom0 := "not attached"
	if state.GetDom0Attached() {
		dom0 = "attached"
	}
	lines := []string{
		"coordinator " + address,
		fmt.Sprintf("pCPUs: %d (%d connected)   vCPU0 on pCPU %d   dom0: %s   injected: %s",
			len(state.GetPcpus()), connected, state.GetVcpu0Pcpu(), dom0, injectedText),
		"",
		"queues",
	}
	queues := [][]string{{"type", "depth", "in flight"}}
	for _, q := range state.GetQueues() {
		queues = append(queues, []string{
			names.TypeLabel(q.GetType().String()),
			strconv.FormatUint(uint64(q.GetDepth()), 10),
			inFlight(q.GetInFlight()),
		})
	}
	lines = append(lines, table(queues)...)
	lines = append(lines, "", "counters")
	var counters [][]string
	if c := state.GetCounters(); c != nil {
		fields := c.ProtoReflect().Descriptor().Fields()
		for i := 0; i < fields.Len(); i++ {
			fd := fields.Get(i)
			counters = append(counters, []string{string(fd.Name()), strconv.FormatUint(c.ProtoReflect().Get(fd).Uint(), 10)})
		}
	}
	lines = append(lines, table(counters)...)

	polling := 0
	var notable [][]string
	for _, t := range state.GetThrottle() {
		isPolling := t.GetMode() == hypervisorv1.ThrottleMode_THROTTLE_MODE_POLLING
		if isPolling {
			polling++
		}
		if !isPolling && t.GetTransitions() == 0 {
			continue
		}
		interval := "-"
		if ms, ok := durationMs(t.GetPollInterval()); isPolling && ok && ms != 0 {
			interval = jsobj.NumberString(ms) + " ms"
		}
		notable = append(notable, []string{
			strconv.FormatUint(uint64(t.GetPcpu()), 10),
			names.TypeLabel(t.GetType().String()),
			strings.ToLower(strings.TrimPrefix(t.GetMode().String(), "THROTTLE_MODE_")),
			interval,
			strconv.FormatUint(t.GetTransitions(), 10),
		})
	}
	lines = append(lines, "", fmt.Sprintf("throttle: %d of %d lines polling", polling, len(state.GetThrottle())))
	if len(notable) > 0 {
		lines = append(lines, table(append([][]string{{"pCPU", "line", "mode", "interval", "transitions"}}, notable...))...)
	}
	return lines
}

// inFlight is "-", "pCPU 1 injected" or "pCPU 1 read (record 7)".
func inFlight(entry *hypervisorv1.QueueEntry) string {
	if entry == nil || entry.GetState() == hypervisorv1.EntryState_ENTRY_STATE_UNSPECIFIED {
		return "-"
	}
	state := strings.ToLower(strings.TrimPrefix(entry.GetState().String(), "ENTRY_STATE_"))
	if entry.GetState() == hypervisorv1.EntryState_ENTRY_STATE_READ {
		return fmt.Sprintf("pCPU %d %s (record %d)", entry.GetPcpu(), state, entry.GetRecordId())
	}
	return fmt.Sprintf("pCPU %d %s", entry.GetPcpu(), state)
}

// durationMs is the duration in milliseconds, computed as JavaScript does it.
func durationMs(d *durationpb.Duration) (float64, bool) {
	if d == nil {
		return 0, false
	}
	return float64(d.GetSeconds())*1000 + float64(d.GetNanos())/1e6, true
}

// table aligns rows in columns, two spaces apart and indented by two.
func table(rows [][]string) []string {
	if len(rows) == 0 {
		return nil
	}
	widths := make([]int, len(rows[0]))
	for _, row := range rows {
		for i, cell := range row {
			if n := jsLength(cell); n > widths[i] {
				widths[i] = n
			}
		}
	}
	out := make([]string, 0, len(rows))
	for _, row := range rows {
		cells := make([]string, len(row))
		for i, cell := range row {
			cells[i] = cell + strings.Repeat(" ", widths[i]-jsLength(cell))
		}
		out = append(out, strings.TrimRight("  "+strings.Join(cells, "  "), " \t\n\r"))
	}
	return out
}

// jsLength is a string's length in UTF-16 code units, as JavaScript counts it.
func jsLength(s string) int {
	return len(utf16.Encode([]rune(s)))
}
