// Against a real local testbed (pCPU hosts + coordinator as child processes,
// no Python dom0): the Node dom0 must log exactly the records injected, each
// once, and leave nothing pending.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import { connect, SAL_NO_INFORMATION } from '../src/client.js';
import { inject, pcpuPending, runCli, startCli, startTestbed, waitFor } from './testbed.js';

/** @type {Awaited<ReturnType<typeof startTestbed>>} */
let tb;
/** Library client as the operator (status only). */
let operator;

const coordinatorState = () => operator.status();
const key = (line) => `${line.pcpu}:${line.record_id}:${line.type}`;
const sorted = (items) => [...items].sort();

describe('Node client against a live testbed', { timeout: 180_000 }, () => {
  before(async () => {
    tb = await startTestbed({ pcpus: 4 });
    operator = connect(tb.xen, tb.tokens.operator);
  }, { timeout: 90_000 });

  after(async () => {
    operator?.close();
    if (tb) {
      await tb.stop();
      tb.remove();
    }
  });

  test('dom0 logs exactly the injected records once each, clears them, and nothing stays pending', async (t) => {
    const dom0 = startCli(['dom0', '--xen', tb.xen, '--token-file', tb.tokensPath, '--cpe-poll', '200']);
    t.after(() => dom0.stop());

    await waitFor(async () => (await coordinatorState()).dom0_attached, {
      timeoutMs: 20_000,
      what: `dom0 attached (dom0 stderr: ${dom0.stderr})`,
    });

    // vCPU0 runs on pCPU 0, so both of these are read and cleared by IPI.
    const cmcIds = await inject(tb, 1, 'cmc', 5);
    const cpeIds = await inject(tb, 2, 'cpe', 2);
    const expected = [...cmcIds.map((id) => `1:${id}:CMC`), ...cpeIds.map((id) => `2:${id}:CPE`)];
    assert.equal(expected.length, 7);

    await waitFor(() => dom0.lines().length >= 7, {
      timeoutMs: 30_000,
      what: `7 records from dom0 (got ${dom0.lines().length}; stderr: ${dom0.stderr}; testbed: ${tb.logs()})`,
    });
    // Its last CLEAR may still be on its way.
    const state = await waitFor(
      async () => {
        const s = await coordinatorState();
        return Number(s.counters.records_cleared) >= 7 && s;
      },
      { timeoutMs: 15_000, what: 'records_cleared >= 7' },
    );
    assert.equal(state.dom0_attached, true);

    // The CLI status while this dom0 is attached: JSON and text.
    const json = await runCli(['status', '--xen', tb.xen, '--token-file', tb.tokensPath, '--json']);
    assert.equal(json.code, 0, json.stderr);
    const status = JSON.parse(json.stdout);
    assert.equal(status.dom0_attached, true);
    assert.equal(status.pcpus.length, 4);
    assert.ok(Number(status.counters.records_cleared) >= 7, json.stdout);
    assert.ok(Number(status.counters.ipi_calls) >= 14, 'GET and CLEAR of each record by IPI');
    for (const queue of status.queues) {
      assert.equal(queue.depth, 0, `queue ${queue.type} is empty`);
      assert.ok(!queue.in_flight, `nothing in flight for ${queue.type}`);
    }
    const text = await runCli(['status', '--xen', tb.xen, '--token-file', tb.tokensPath]);
    assert.equal(text.code, 0, text.stderr);
    assert.match(text.stdout, /pCPUs: 4 \(4 connected\)/);
    assert.match(text.stdout, /dom0: attached/);
    assert.match(text.stdout, /records_cleared\s+([7-9]|\d\d+)/);

    for (const pcpu of ['0', '1', '2', '3']) {
      const pending = await pcpuPending(tb, pcpu);
      for (const [type, count] of Object.entries(pending)) {
        assert.equal(count, 0, `pCPU ${pcpu} ${type} pending`);
      }
    }

    // Nothing more arrives; SIGINT stops it cleanly.
    const exit = await dom0.stop();
    assert.deepEqual(exit, { code: 0, signal: null }, dom0.stderr);
    assert.match(dom0.stderr, /stopped \(SIGINT\): 7 records logged, 0 duplicates, 7 cleared/);

    const lines = dom0.lines().map((line) => JSON.parse(line));
    assert.equal(lines.length, 7, 'exactly 7 records logged');
    assert.equal(new Set(lines.map(key)).size, 7, 'no duplicates');
    assert.deepEqual(sorted(lines.map(key)), sorted(expected));
    for (const line of lines) {
      assert.equal(line.severity, 'corrected');
      assert.equal(line.by_ipi, true);
      assert.ok(line.sections.length >= 1, 'record has sections');
      assert.match(line.created_at, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z$/);
    }
  });

  test('dom0 --max picks up records queued before it attached, reads locally on vCPU0\'s pCPU, and exits', async (t) => {
    const clearedBefore = Number((await coordinatorState()).counters.records_cleared);
    const remote = await inject(tb, 3, 'cmc', 3);
    const local = await inject(tb, 0, 'cmc', 1);
    const expected = [...remote.map((id) => `3:${id}:CMC`), ...local.map((id) => `0:${id}:CMC`)];

    const dom0 = startCli(['dom0', '--xen', tb.xen, '--token-file', tb.tokensPath, '--max', '4', '--cpe-poll', '0']);
    t.after(() => dom0.stop());
    let timer;
    const exit = await Promise.race([
      dom0.exited,
      new Promise((resolve) => {
        timer = setTimeout(() => resolve('did not exit within 30 s'), 30_000);
      }),
    ]);
    clearTimeout(timer);
    assert.deepEqual(exit, { code: 0, signal: null }, `dom0 exit; stderr: ${dom0.stderr}`);
    assert.match(dom0.stderr, /stopped \(4 records logged\)/);

    const lines = dom0.lines().map((line) => JSON.parse(line));
    assert.deepEqual(sorted(lines.map(key)), sorted(expected));
    for (const line of lines) assert.equal(line.by_ipi, line.pcpu !== 0, `by_ipi of pCPU ${line.pcpu}`);

    const state = await coordinatorState();
    assert.equal(Number(state.counters.records_cleared), clearedBefore + 4);
    assert.ok(Number(state.counters.local_calls) >= 2, 'GET and CLEAR on pCPU 0 made locally');
    for (const pcpu of ['0', '3']) {
      assert.equal((await pcpuPending(tb, pcpu)).RECORD_TYPE_CMC, 0, `pCPU ${pcpu} CMC pending`);
    }
  });

  test('identity: only dom0 reads; a wrong token is refused with one line and exit 2', async (t) => {
    const asOperator = await operator.getStateInfo('cmc');
    assert.equal(asOperator.sal_status, SAL_NO_INFORMATION, 'non-dom0 GET answers -5, as Xen does');

    const badBook = path.join(tb.dir, 'wrong-tokens.json');
    fs.writeFileSync(badBook, JSON.stringify({ operator: 'not-a-valid-token', dom0: tb.tokens.operator }));

    const status = await runCli(['status', '--xen', tb.xen, '--token-file', badBook]);
    assert.equal(status.code, 2);
    assert.equal(status.stdout, '');
    assert.match(status.stderr, /^xenmca-node status: error: .*UNAUTHENTICATED \[INVALID_TOKEN\]: DescribeHypervisor: .*\n$/);

    // dom0 presenting the operator's token: AttachDom0 is refused, no retry loop.
    const dom0 = await runCli(['dom0', '--xen', tb.xen, '--token-file', badBook, '--cpe-poll', '0'], {
      timeoutMs: 30_000,
    });
    t.diagnostic(dom0.stderr.trim());
    assert.equal(dom0.code, 2);
    assert.match(dom0.stderr, /error: AttachDom0 refused: PERMISSION_DENIED \[IDENTITY_NOT_ALLOWED\]/);
    assert.equal(dom0.stdout, '');
  });
});
