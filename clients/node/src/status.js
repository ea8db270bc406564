// The coordinator's state (DescribeHypervisorResponse) as plain text.

import { durationMs } from './records.js';
import { typeLabel } from './names.js';

const table = (rows) => {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((row) => String(row[i]).length)));
  return rows.map((row) => '  ' + row.map((cell, i) => String(cell).padEnd(widths[i])).join('  ').trimEnd());
};

const inFlight = (entry) => {
  if (!entry || entry.state === 'ENTRY_STATE_UNSPECIFIED') return '-';
  const state = String(entry.state).replace(/^ENTRY_STATE_/, '').toLowerCase();
  return entry.state === 'ENTRY_STATE_READ'
    ? `pCPU ${entry.pcpu} ${state} (record ${entry.record_id})`
    : `pCPU ${entry.pcpu} ${state}`;
};

/**
 * Lines describing the coordinator's state.
 * @param {any} state DescribeHypervisorResponse as decoded
 * @param {string} address
 * @returns {string[]}
 */
export function statusLines(state, address) {
  const pcpus = state.pcpus ?? [];
  const connected = pcpus.filter((p) => p.connected).length;
  const injected = (state.injected_types ?? []).map(typeLabel).join(', ') || '-';
  const lines = [
    `coordinator ${address}`,
    `pCPUs: ${pcpus.length} (${connected} connected)   vCPU0 on pCPU ${state.vcpu0_pcpu}   ` +
      `dom0: ${state.dom0_attached ? 'attached' : 'not attached'}   injected: ${injected}`,
    '',
    'queues',
    ...table([
      ['type', 'depth', 'in flight'],
      ...(state.queues ?? []).map((q) => [typeLabel(q.type), q.depth, inFlight(q.in_flight)]),
    ]),
    '',
    'counters',
    ...table(Object.entries(state.counters ?? {}).map(([name, value]) => [name, value])),
  ];
  const throttle = state.throttle ?? [];
  const polling = throttle.filter((t) => t.mode === 'THROTTLE_MODE_POLLING');
  lines.push('', `throttle: ${polling.length} of ${throttle.length} lines polling`);
  const notable = throttle.filter((t) => t.mode === 'THROTTLE_MODE_POLLING' || Number(t.transitions) > 0);
  if (notable.length) {
    lines.push(
      ...table([
        ['pCPU', 'line', 'mode', 'interval', 'transitions'],
        ...notable.map((t) => {
          const ms = durationMs(t.poll_interval);
          return [
            t.pcpu,
            typeLabel(t.type),
            String(t.mode).replace(/^THROTTLE_MODE_/, '').toLowerCase(),
            t.mode === 'THROTTLE_MODE_POLLING' && ms ? `${ms} ms` : '-',
            t.transitions,
          ];
        }),
      ]),
    );
  }
  return lines;
}
