// Mutual TLS against a real local testbed whose servers accept only clients
// with a certificate from their CA: the Node client's identity is its
// certificate's CN, with no token at all.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import { after, before, describe, test } from 'node:test';

import { inject, pcpuPending, runCli, startTestbed } from './testbed.js';

/** @type {Awaited<ReturnType<typeof startTestbed>>} */
let tb;

describe('Node client over mutual TLS', { timeout: 180_000 }, () => {
  before(async () => {
    tb = await startTestbed({ pcpus: 2, tls: true });
  }, { timeout: 90_000 });

  after(async () => {
    if (tb) {
      await tb.stop();
      tb.remove();
    }
  });

  test('status as the operator certificate, no token', async () => {
    const result = await runCli(['status', '--xen', tb.xen, '--json', ...tb.tlsFlags('operator')]);
    assert.equal(result.code, 0, result.stderr);
    const state = JSON.parse(result.stdout);
    assert.equal(state.pcpus.length, 2);
  });

  test('dom0 by its certificate reads, logs and clears exactly the injected records', async () => {
    const ids = await inject(tb, 1, 'cmc', 3);
    const out = `${tb.dir}/dom0-tls.jsonl`;
    const dom0 = await runCli(
      ['dom0', '--xen', tb.xen, ...tb.tlsFlags('dom0'), '--max', '3', '--cpe-poll', '0', '--out', out],
      { timeoutMs: 60_000 },
    );
    assert.equal(dom0.code, 0, dom0.stderr);
    const lines = fs.readFileSync(out, 'utf8').trim().split('\n').map((line) => JSON.parse(line));
    assert.deepEqual(lines.map((line) => `${line.pcpu}:${line.record_id}:${line.type}`).sort(),
      ids.map((id) => `1:${id}:CMC`).sort());
    assert.ok(lines.every((line) => line.by_ipi), 'pCPU 1 is not vCPU0\'s: read by IPI');
    assert.equal((await pcpuPending(tb, 1)).RECORD_TYPE_CMC, 0);
  });

  test('the operator certificate cannot act as dom0: one line, exit 2', async () => {
    const dom0 = await runCli(['dom0', '--xen', tb.xen, ...tb.tlsFlags('operator'), '--cpe-poll', '0'], {
      timeoutMs: 30_000,
    });
    assert.equal(dom0.code, 2);
    assert.equal(dom0.stdout, '');
    assert.match(dom0.stderr, /error: AttachDom0 refused: PERMISSION_DENIED \[IDENTITY_NOT_ALLOWED\]/);
  });

  test('a plaintext client is not served: one line, exit 2', async () => {
    const result = await runCli(['status', '--xen', tb.xen, '--timeout', '3000']);
    assert.equal(result.code, 2);
    assert.equal(result.stdout, '');
    assert.match(result.stderr, /^xenmca-node status: error: .*(UNAVAILABLE|DEADLINE_EXCEEDED).*\n$/);
  });
});
