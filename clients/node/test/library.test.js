// The pieces under the client: proto loading, names, the record line, rich
// error details, token files.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';

import * as grpc from '@grpc/grpc-js';

import { connect, recordTypeEnum } from '../src/client.js';
import { DEFAULT_PROTOS_ROOT, loadXenmca } from '../src/protos.js';
import { durationMs, recordLine, timestampIso } from '../src/records.js';
import { decodeFields, describeRpcError, errorInfoFromStatus } from '../src/rpc-errors.js';
import { loadTokenBook, resolveToken, TokenFileError } from '../src/tokens.js';

describe('protos', () => {
  test("loads HypervisorService from the repository's protos", () => {
    assert.ok(fs.existsSync(path.join(DEFAULT_PROTOS_ROOT, 'xenmca/hypervisor/v1/hypervisor_service.proto')));
    const xenmca = loadXenmca();
    const methods = Object.keys(xenmca.hypervisor.v1.HypervisorService.service);
    for (const m of ['AttachDom0', 'GetStateInfo', 'GetStateInfoSize', 'ClearStateInfo', 'DescribeHypervisor', 'SetVcpuPlacement']) {
      assert.ok(methods.includes(m), m);
    }
  });

  test('decodes with proto field names, enum names, uint64 as strings, optional record_id', () => {
    const svc = loadXenmca().hypervisor.v1.HypervisorService.service;
    const clear = svc.ClearStateInfo;
    const withId = clear.requestDeserialize(clear.requestSerialize({ type: 'RECORD_TYPE_CPE', record_id: '18446744073709551615' }));
    assert.equal(withId.type, 'RECORD_TYPE_CPE');
    assert.equal(withId.record_id, '18446744073709551615');
    // Absent optional field: not on the wire at all (the coordinator then clears the current record).
    assert.equal(clear.requestSerialize({ type: 'RECORD_TYPE_CPE' }).length, 2);

    const get = svc.GetStateInfo;
    const reply = get.responseDeserialize(
      get.responseSerialize({
        sal_status: 0,
        by_ipi: true,
        record: {
          pcpu: 3,
          record_id: '42',
          type: 'RECORD_TYPE_CMC',
          severity: 'SEVERITY_CORRECTED',
          created_at: { seconds: '1700000000', nanos: 123456789 },
          sections: [{ error_recovery_info: 129, platform_memory: { physical_addr: '4096', oem_id: Buffer.alloc(16).toString('base64') } }],
          raw: Buffer.from([1, 2, 3]).toString('base64'),
        },
      }),
    );
    assert.equal(reply.record.record_id, '42');
    assert.equal(reply.record.sections[0].body, 'platform_memory');
    const line = recordLine(reply.record, { byIpi: reply.by_ipi });
    assert.deepEqual(Object.keys(line), ['pcpu', 'record_id', 'type', 'severity', 'created_at', 'overflow', 'sections', 'by_ipi']);
    assert.equal(line.created_at, '2023-11-14T22:13:20.123456789Z');
    assert.equal(line.sections[0].platform_memory.physical_addr, '4096');
    assert.equal(line.sections[0].platform_memory.node, 0, 'defaults filled in');
    assert.equal(recordLine(reply.record, { raw: true }).raw, 'AQID');
  });

  test('record types by any spelling', () => {
    for (const spelling of ['cmc', 'CMC', 'RECORD_TYPE_CMC', 3]) assert.equal(recordTypeEnum(spelling), 'RECORD_TYPE_CMC');
    assert.throws(() => recordTypeEnum('foo'), /unknown record type/);
    assert.throws(() => recordTypeEnum(0), /unknown record type/);
  });

  test('timestamps and durations', () => {
    assert.equal(timestampIso(null), null);
    assert.equal(timestampIso({ seconds: '0', nanos: 0 }), null);
    assert.equal(durationMs({ seconds: '2', nanos: 500_000_000 }), 2500);
  });

  test('a client makes no connection until called, and closes', () => {
    const client = connect('127.0.0.1:1', 'token-123456');
    assert.equal(client.address, '127.0.0.1:1');
    client.close();
  });
});

describe('rich error details', () => {
  // google.rpc.Status{code: 16, message: "m", details: [Any{ErrorInfo{reason, domain}}]}, encoded by hand.
  const field = (number, bytes) => Buffer.concat([Buffer.from([(number << 3) | 2, bytes.length]), bytes]);
  const errorInfo = Buffer.concat([field(1, Buffer.from('MISSING_CREDENTIALS')), field(2, Buffer.from('xenmca.dev'))]);
  const any = Buffer.concat([field(1, Buffer.from('type.googleapis.com/google.rpc.ErrorInfo')), field(2, errorInfo)]);
  const status = Buffer.concat([Buffer.from([0x08, 16]), field(2, Buffer.from('m')), field(3, any)]);

  test('decodes the ErrorInfo reason from google.rpc.Status', () => {
    assert.deepEqual(decodeFields(status).get(1), [16]);
    assert.deepEqual(errorInfoFromStatus(status), { reason: 'MISSING_CREDENTIALS', domain: 'xenmca.dev' });
    assert.equal(errorInfoFromStatus(Buffer.from([0xff])), null, 'malformed: ignored');
  });

  test('describes a failed call in one line', () => {
    const metadata = new grpc.Metadata();
    metadata.set('grpc-status-details-bin', status);
    const err = { code: grpc.status.UNAUTHENTICATED, details: 'present a\nvalid token', metadata };
    assert.equal(describeRpcError(err), 'UNAUTHENTICATED [MISSING_CREDENTIALS]: present a valid token');
    assert.equal(describeRpcError({ code: 14, details: 'down. Resolution note: ', metadata: new grpc.Metadata() }), 'UNAVAILABLE: down.');
  });
});

describe('token files', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'xenmca-node-tokens-'));
  after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const file = (name, text) => {
    const p = path.join(dir, name);
    fs.writeFileSync(p, text);
    return p;
  };

  test('JSON and flat YAML', () => {
    assert.deepEqual(loadTokenBook(file('t.json', '{"dom0": "dom0-token", "operator": "op-token-1"}')), {
      dom0: 'dom0-token',
      operator: 'op-token-1',
    });
    assert.deepEqual(loadTokenBook(file('t.yaml', '# tokens\ndom0: "dom0-token"\noperator: op-token-1\n')), {
      dom0: 'dom0-token',
      operator: 'op-token-1',
    });
  });

  test('refuses short tokens, non-mappings and missing identities', () => {
    assert.throws(() => loadTokenBook(file('short.json', '{"dom0": "x"}')), /8\+ characters/);
    assert.throws(() => loadTokenBook(file('list.json', '["a"]')), /mapping/);
    assert.throws(() => resolveToken(file('op.json', '{"operator": "op-token-1"}'), ['dom0']), TokenFileError);
    assert.equal(resolveToken(file('both.json', '{"operator": "op-token-1", "dom0": "dom0-token"}'), ['operator', 'dom0']), 'op-token-1');
  });

  test('no file, no token', () => {
    const saved = process.env.XENMCA_TOKEN_FILE;
    delete process.env.XENMCA_TOKEN_FILE;
    try {
      assert.equal(resolveToken(undefined, ['dom0']), null);
    } finally {
      if (saved !== undefined) process.env.XENMCA_TOKEN_FILE = saved;
    }
  });
});
