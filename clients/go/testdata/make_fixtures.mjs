// Makes fixtures.json: messages as wire bytes, and what the Node client
// renders from those bytes (its dom0 record line, its status text and JSON).
// The Go tests render the same bytes and must produce the same text.
//
//   cd clients/node && npm ci && cd ../go && node testdata/make_fixtures.mjs > testdata/fixtures.json

import { loadXenmca } from '../../node/src/protos.js';
import { recordLine } from '../../node/src/records.js';
import { statusLines } from '../../node/src/status.js';

const service = loadXenmca().hypervisor.v1.HypervisorService.service;
const encode = (method, object) => service[method].responseSerialize(object);
const decode = (method, bytes) => service[method].responseDeserialize(bytes);

const check = (extra) => ({
  check_info: '3404963752033035290',
  requestor_identifier: '0',
  responder_identifier: '7',
  target_identifier: '18446744073709551615',
  precise_ip: '2476382236730367472',
  ...extra,
});

const records = [
  {
    name: 'cmc processor, by IPI',
    reply: {
      sal_status: 0,
      by_ipi: true,
      record: {
        pcpu: 1, record_id: '3', type: 'RECORD_TYPE_CMC', severity: 'SEVERITY_CORRECTED',
        created_at: { seconds: '1795654426', nanos: 763290145 }, overflow: false,
        sections: [{ error_recovery_info: 129, processor: { proc_error_map: '7882', proc_state_parameter: '1', proc_cr_lid: '0', cache_checks: [check(), check({ precise_ip: '1' })], bus_checks: [check()] } }],
        raw: Buffer.from('SAL record bytes \u0000\u00ff'),
        created_monotonic_ns: '123456789',
      },
    },
  },
  {
    name: 'cpe memory with OEM bytes, local, raw',
    raw: true,
    reply: {
      sal_status: 0,
      by_ipi: false,
      record: {
        pcpu: 0, record_id: '18446744073709551615', type: 'RECORD_TYPE_CPE', severity: 'SEVERITY_CORRECTED',
        created_at: { seconds: '1795654426', nanos: 5 }, overflow: true,
        sections: [
          { error_recovery_info: 0, platform_memory: { error_status: '23745', physical_addr: '12130937561344', node: 3, bit_position: 23, oem_id: Buffer.from([1, 2, 3]), oem_data: Buffer.from('\u0000\u0001\u00fe') } },
          { error_recovery_info: 1, pci_bus: { err_status: '1', err_type: 2, bus_id: 4294967295, oem_data: Buffer.from([]) } },
          { error_recovery_info: 2, platform_specific: { err_status: '9', guid: Buffer.from('0123456789abcdef'), oem_data: Buffer.from('x') } },
          { error_recovery_info: 3 },
        ],
        raw: Buffer.from([0, 1, 2, 250, 251, 252, 253, 254, 255]),
      },
    },
  },
  {
    name: 'mca fatal without a timestamp, no sections',
    reply: {
      sal_status: 0,
      by_ipi: false,
      record: { pcpu: 4294967295, record_id: '0', type: 'RECORD_TYPE_MCA', severity: 'SEVERITY_FATAL' },
    },
  },
  {
    name: 'init recoverable, whole seconds, unknown severity number',
    raw: true,
    reply: {
      sal_status: 0,
      by_ipi: true,
      record: { pcpu: 2, record_id: '42', type: 'RECORD_TYPE_INIT', severity: 9, created_at: { seconds: '1', nanos: 0 } },
    },
  },
];

const statuses = [
  {
    name: 'busy coordinator',
    address: '127.0.0.1:50051',
    reply: {
      pcpus: [
        { pcpu: 0, address: '127.0.0.1:1000', connected: true, connects: '1' },
        { pcpu: 1, address: '127.0.0.1:1001', connected: false, connects: '12' },
      ],
      queues: [
        { type: 'RECORD_TYPE_MCA', depth: 0 },
        { type: 'RECORD_TYPE_CMC', depth: 3, in_flight: { pcpu: 1, state: 'ENTRY_STATE_READ', record_id: '17', sal_type: 'RECORD_TYPE_CMC' },
          entries: [{ pcpu: 1, state: 'ENTRY_STATE_QUEUED', record_id: '18' }], virq_pending: true },
        { type: 'RECORD_TYPE_CPE', depth: 1, in_flight: { pcpu: 0, state: 'ENTRY_STATE_INJECTED' } },
      ],
      throttle: [
        { pcpu: 0, type: 'RECORD_TYPE_CMC', mode: 'THROTTLE_MODE_POLLING', poll_interval: { seconds: '0', nanos: 250000000 }, transitions: '1' },
        { pcpu: 0, type: 'RECORD_TYPE_CPE', mode: 'THROTTLE_MODE_INTERRUPT', poll_interval: { seconds: '2', nanos: 500000 }, transitions: '2' },
        { pcpu: 1, type: 'RECORD_TYPE_CMC', mode: 'THROTTLE_MODE_POLLING', poll_interval: { seconds: '1', nanos: 333333 }, transitions: '12345678901234567890' },
        { pcpu: 1, type: 'RECORD_TYPE_CPE', mode: 'THROTTLE_MODE_INTERRUPT' },
      ],
      counters: { interrupts: '5', injections: '7', ipi_calls: '14', records_cleared: '7', virqs_coalesced: '18446744073709551615' },
      vcpu0_pcpu: 1,
      dom0_attached: true,
      injected_types: ['RECORD_TYPE_CMC', 'RECORD_TYPE_MCA'],
      policy: { name: 'linux', label: 'Linux 2.6.x "quoted" \\ tab\t', choices: { zeta: 'z', 10: 'ten', alpha: 'a\u0001', 2: 'two', '': 'empty' }, sal_mode: 'ipi' },
    },
  },
  { name: 'empty reply', address: '[::1]:7', reply: {} },
];

const out = { records: [], statuses: [] };
for (const r of records) {
  const bytes = encode('GetStateInfo', r.reply);
  const got = decode('GetStateInfo', bytes);
  out.records.push({
    name: r.name,
    raw: Boolean(r.raw),
    reply_base64: Buffer.from(bytes).toString('base64'),
    line: JSON.stringify(recordLine(got.record, { byIpi: got.by_ipi, raw: Boolean(r.raw) })),
  });
}
for (const s of statuses) {
  const bytes = encode('DescribeHypervisor', s.reply);
  const state = decode('DescribeHypervisor', bytes);
  let text;
  try {
    text = statusLines(state, s.address).join('\n');
  } catch (err) {
    text = null; // the Node client cannot render it as text
  }
  out.statuses.push({
    name: s.name,
    address: s.address,
    reply_base64: Buffer.from(bytes).toString('base64'),
    json: JSON.stringify(state, null, 2),
    text,
  });
}
process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
