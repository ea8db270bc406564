// Writes ../resources/fixtures/node-rendering.json: messages as protobuf bytes
// (base64) next to what the Node client (clients/node) prints for them, so the
// Java tests can check that the two clients render the same bytes the same way.
//
//   cd clients/node && npm ci && node ../java/src/test/node/make-fixtures.mjs
//
// Rerun it when clients/node/src/records.js or status.js changes.

import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { loadXenmca } from '../../../../node/src/protos.js';
import { recordLine } from '../../../../node/src/records.js';
import { statusLines } from '../../../../node/src/status.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const out = path.join(here, '..', 'resources', 'fixtures', 'node-rendering.json');
const svc = loadXenmca().hypervisor.v1.HypervisorService.service;
const get = svc.GetStateInfo;
const describe = svc.DescribeHypervisor;
const b64 = (bytes) => Buffer.from(bytes).toString('base64');

const modCheck = (n) => ({
  check_info: String(n), requestor_identifier: '2', responder_identifier: '0',
  target_identifier: '18446744073709551615', precise_ip: String(0x4000 + n),
});

const records = {
  processor_by_ipi: {
    sal_status: 0, by_ipi: true,
    record: {
      pcpu: 1, record_id: '3', type: 'RECORD_TYPE_CMC', severity: 'SEVERITY_CORRECTED',
      created_at: { seconds: '1795654426', nanos: 763290145 },
      sections: [{ error_recovery_info: 129, processor: {
        proc_error_map: '4096', proc_state_parameter: '9223372036854775808', proc_cr_lid: '16777216',
        cache_checks: [modCheck(1), modCheck(2)], bus_checks: [modCheck(3)] } }],
      raw: b64([0x52, 0x45, 0x43, 0x00, 0xff, 0x10]),
      created_monotonic_ns: '123456789012',
    },
  },
  memory_local: {
    sal_status: 0, by_ipi: false,
    record: {
      pcpu: 0, record_id: '18446744073709551615', type: 'RECORD_TYPE_CPE', severity: 'SEVERITY_CORRECTED',
      created_at: { seconds: '1700000000', nanos: 5 }, overflow: true,
      sections: [
        { error_recovery_info: 1, platform_memory: {
          error_status: '0', physical_addr: '305419896', addr_mask: '281474976710655', node: 1, card: 2,
          module: 3, bank: 4, device: 5, row: 4294967295, column: 7, bit_position: 63,
          oem_id: b64([...Array(16).keys()]), oem_data: b64([0xde, 0xad, 0xbe, 0xef, 0xfb, 0xff]) } },
        { error_recovery_info: 0, pci_bus: {
          err_status: '1', err_type: 3, bus_id: 258, bus_address: '4027580416', bus_data: '0',
          bus_cmd: '6', requestor_id: '7', responder_id: '8', target_id: '9' } },
        { error_recovery_info: 128, platform_specific: {
          err_status: '10', guid: b64([...Array(16).keys()].map((i) => 255 - i)), oem_data: '' } },
        { error_recovery_info: 2 },
      ],
    },
  },
  defaults_only: {
    sal_status: 0, by_ipi: false,
    record: { pcpu: 0, record_id: '0', type: 'RECORD_TYPE_MCA', severity: 'SEVERITY_FATAL' },
  },
  empty_processor: {
    sal_status: 0, by_ipi: true,
    record: {
      pcpu: 4294967295, record_id: '1', type: 'RECORD_TYPE_INIT', severity: 'SEVERITY_RECOVERABLE',
      created_at: { seconds: '0', nanos: 999999999 },
      sections: [{ error_recovery_info: 4294967295, processor: {} }],
    },
  },
};

const states = {
  empty: {},
  busy: {
    pcpus: [
      { pcpu: 0, address: '127.0.0.1:40001', connected: true, connects: '1' },
      { pcpu: 1, address: '127.0.0.1:40002', connected: false, connects: '18446744073709551615' },
      { pcpu: 2, address: '[::1]:40003', connected: true, connects: '0' },
    ],
    queues: [
      { type: 'RECORD_TYPE_CMC', depth: 2, virq_pending: true,
        in_flight: { pcpu: 1, state: 'ENTRY_STATE_READ', record_id: '42', sal_type: 'RECORD_TYPE_CMC' },
        entries: [{ pcpu: 2, state: 'ENTRY_STATE_QUEUED', sal_type: 'RECORD_TYPE_MCA' }, { pcpu: 0, state: 'ENTRY_STATE_QUEUED' }] },
      { type: 'RECORD_TYPE_CPE', depth: 0, in_flight: { pcpu: 2, state: 'ENTRY_STATE_INJECTED' } },
      { type: 'RECORD_TYPE_MCA', depth: 12345, in_flight: {} },
    ],
    throttle: [
      { pcpu: 0, type: 'RECORD_TYPE_CMC', mode: 'THROTTLE_MODE_INTERRUPT', poll_interval: { seconds: '0', nanos: 0 }, transitions: '0' },
      { pcpu: 1, type: 'RECORD_TYPE_CMC', mode: 'THROTTLE_MODE_POLLING', poll_interval: { seconds: '2', nanos: 500000 }, transitions: '3' },
      { pcpu: 1, type: 'RECORD_TYPE_CPE', mode: 'THROTTLE_MODE_INTERRUPT', transitions: '18446744073709551615' },
      { pcpu: 2, type: 'RECORD_TYPE_CPE', mode: 'THROTTLE_MODE_POLLING', poll_interval: { seconds: '0', nanos: 123456789 }, transitions: '1' },
      { pcpu: 2, type: 'RECORD_TYPE_CMC', mode: 'THROTTLE_MODE_POLLING' },
    ],
    counters: { interrupts: '12', injections: '11', local_calls: '4', ipi_calls: '18446744073709551615',
      records_copied: '9', records_cleared: '8', polls: '100000' },
    vcpu0_pcpu: 2,
    dom0_attached: true,
    injected_types: ['RECORD_TYPE_CMC', 'RECORD_TYPE_CPE'],
    policy: { name: 'xenmca', label: 'xenmca+after_clear=head',
      choices: { routing: 'owner', after_clear: 'head', 'odd "key"\n\u00e9': 'v\u0001\u2028' }, sal_mode: 'extended' },
  },
};

const fixture = { records: [], states: [] };
for (const [name, message] of Object.entries(records)) {
  const bytes = get.responseSerialize(message);
  const got = get.responseDeserialize(bytes);
  fixture.records.push({
    name,
    get_state_info_response: bytes.toString('base64'),
    line: JSON.stringify(recordLine(got.record, { byIpi: got.by_ipi })),
    raw_line: JSON.stringify(recordLine(got.record, { byIpi: got.by_ipi, raw: true })),
  });
}
for (const [name, message] of Object.entries(states)) {
  const bytes = describe.responseSerialize(message);
  const state = describe.responseDeserialize(bytes);
  fixture.states.push({
    name,
    describe_hypervisor_response: bytes.toString('base64'),
    json: JSON.stringify(state, null, 2),
    text: name === 'empty' ? null : statusLines(state, '127.0.0.1:50051').join('\n'),
  });
}
fs.writeFileSync(out, `${JSON.stringify(fixture, null, 2)}\n`);
console.log(`wrote ${out}`);
