// The dom0 loop against a fake coordinator: write before CLEAR, CLEAR by the
// record id read, once per record, --max, and failures that must not clear.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import * as grpc from '@grpc/grpc-js';

import { Dom0, Dom0Error } from '../src/dom0.js';

const tick = () => new Promise((resolve) => setTimeout(resolve, 1));

/**
 * A coordinator in memory: per-type FIFO of records, CMC injected one at a
 * time (the next after a CLEAR), CPE only polled. `events` records every
 * call in order.
 */
function fakeCoordinator({ cmc = [], cpe = [], clearFailures = {}, attachError = null } = {}) {
  const queues = { RECORD_TYPE_CMC: [...cmc], RECORD_TYPE_CPE: [...cpe] };
  const events = [];
  let onInterrupt = null;
  let injection = 0;
  const inject = () => {
    if (onInterrupt && queues.RECORD_TYPE_CMC.length) {
      setImmediate(() => onInterrupt({ type: 'RECORD_TYPE_CMC', injection_id: String(++injection), reinjected: false }));
    }
  };
  const client = {
    address: 'fake:1',
    events,
    queues,
    waitForReady: async () => {},
    attachDom0(handler) {
      onInterrupt = handler;
      let end;
      const ended = new Promise((resolve) => {
        end = resolve;
      });
      if (attachError) setImmediate(() => end({ ok: false, error: attachError }));
      else inject();
      return { cancel: () => end({ ok: true }), ended };
    },
    async getStateInfo(type) {
      await tick();
      const head = queues[type][0];
      events.push(`get ${type} ${head ? `${head.pcpu}:${head.record_id}` : '-'}`);
      if (!head) return { sal_status: -5, record: null, by_ipi: false };
      return { sal_status: 0, record: head, by_ipi: head.pcpu !== 0 };
    },
    async clearStateInfo(type, recordId) {
      await tick();
      const head = queues[type][0];
      const key = `${head?.pcpu}:${recordId}`;
      events.push(`clear ${type} ${key}`);
      if (!head || head.record_id !== String(recordId)) return { sal_status: -5 };
      if (clearFailures[key] > 0) {
        clearFailures[key] -= 1;
        if (type === 'RECORD_TYPE_CMC') inject(); // the entry is kept and injected again
        return { sal_status: -3 };
      }
      queues[type].shift();
      if (type === 'RECORD_TYPE_CMC') inject();
      return { sal_status: 0, cleared_record_id: String(recordId), pcpu: head.pcpu, by_ipi: head.pcpu !== 0 };
    },
    close() {},
  };
  return client;
}

const record = (pcpu, id, type = 'RECORD_TYPE_CMC') => ({
  pcpu,
  record_id: String(id),
  type,
  severity: 'SEVERITY_CORRECTED',
  created_at: { seconds: '1700000000', nanos: 5 },
  sections: [{ error_recovery_info: 129, processor: { proc_cr_lid: '0' }, body: 'processor' }],
  raw: 'AAAA',
  overflow: false,
  created_monotonic_ns: '1',
});

/** A log that records when each line became durable, in the same event list. */
function slowLog(events, { failOn } = {}) {
  const lines = [];
  return {
    lines,
    async write(line) {
      const { pcpu, record_id: id } = JSON.parse(line);
      await new Promise((resolve) => setTimeout(resolve, 3));
      if (failOn === `${pcpu}:${id}`) throw new Error('disk full');
      lines.push(JSON.parse(line));
      events.push(`durable ${pcpu}:${id}`);
    },
  };
}

describe('Dom0', () => {
  test('writes each record durably before clearing exactly that record id; stops at --max', async () => {
    const xen = fakeCoordinator({
      cmc: [record(1, 1), record(1, 2), record(0, 1)],
      cpe: [record(2, 7, 'RECORD_TYPE_CPE'), record(2, 8, 'RECORD_TYPE_CPE')],
    });
    const log = slowLog(xen.events);
    const dom0 = new Dom0(xen, { write: log.write, max: 5, cpePollMs: 5 });
    const { reason, counters } = await dom0.run();

    assert.equal(reason, '5 records logged');
    assert.equal(counters.logged, 5);
    assert.equal(counters.cleared, 5);
    assert.deepEqual(
      log.lines.map((l) => `${l.pcpu}:${l.record_id}:${l.type}`).sort(),
      ['0:1:CMC', '1:1:CMC', '1:2:CMC', '2:7:CPE', '2:8:CPE'],
    );
    for (const line of log.lines) {
      const key = `${line.pcpu}:${line.record_id}`;
      const durable = xen.events.indexOf(`durable ${key}`);
      const clear = xen.events.findIndex((e) => e.startsWith('clear') && e.endsWith(` ${key}`));
      assert.ok(durable >= 0 && clear > durable, `${key} durable (${durable}) before clear (${clear})`);
    }
    assert.deepEqual(xen.queues, { RECORD_TYPE_CMC: [], RECORD_TYPE_CPE: [] });
    const cmcLine = log.lines.find((l) => l.pcpu === 1);
    assert.deepEqual(cmcLine, {
      pcpu: 1,
      record_id: cmcLine.record_id,
      type: 'CMC',
      severity: 'corrected',
      created_at: '2023-11-14T22:13:20.000000005Z',
      overflow: false,
      sections: [{ error_recovery_info: 129, processor: { proc_cr_lid: '0' } }],
      by_ipi: true,
    });
  });

  test('a record whose write fails is not cleared, and dom0 fails with exit status 1', async () => {
    const xen = fakeCoordinator({ cmc: [record(1, 1), record(1, 2)] });
    const log = slowLog(xen.events, { failOn: '1:1' });
    const dom0 = new Dom0(xen, { write: log.write, cpePollMs: 0 });
    await assert.rejects(dom0.run(), (err) => err instanceof Dom0Error && err.exitCode === 1 && /disk full/.test(err.message));
    assert.equal(xen.events.filter((e) => e.startsWith('clear')).length, 0);
    assert.equal(xen.queues.RECORD_TYPE_CMC.length, 2);
  });

  test('a failed CLEAR: delivered again, logged once, cleared before --max stops it', async () => {
    const xen = fakeCoordinator({ cmc: [record(1, 1), record(1, 2)], clearFailures: { '1:1': 2 } });
    const log = slowLog(xen.events);
    const messages = [];
    const dom0 = new Dom0(xen, { write: log.write, max: 2, cpePollMs: 0, log: (m) => messages.push(m) });
    const { counters } = await dom0.run();
    assert.equal(counters.logged, 2);
    assert.equal(counters.duplicates, 2);
    assert.equal(log.lines.length, 2);
    assert.deepEqual(xen.queues.RECORD_TYPE_CMC, []);
    assert.ok(messages.some((m) => /CLEAR 1:1: SAL status -3/.test(m)), messages.join('\n'));
  });

  test('records already in the log are cleared without writing them again', async () => {
    const xen = fakeCoordinator({ cmc: [record(1, 1), record(1, 2)] });
    const log = slowLog(xen.events);
    const dom0 = new Dom0(xen, { write: log.write, max: 1, cpePollMs: 0, alreadyLogged: ['1:1'] });
    const { counters } = await dom0.run();
    assert.deepEqual(log.lines.map((l) => l.record_id), ['2']);
    assert.equal(counters.duplicates, 1);
    assert.deepEqual(xen.queues.RECORD_TYPE_CMC, []);
  });

  test('past --max a new record is left in firmware, not cleared', async () => {
    const xen = fakeCoordinator({ cmc: [record(1, 1)], cpe: [record(2, 1, 'RECORD_TYPE_CPE')] });
    const log = slowLog(xen.events);
    const dom0 = new Dom0(xen, { write: log.write, max: 1, cpePollMs: 1 });
    await dom0.run();
    assert.equal(log.lines.length, 1);
    assert.equal(xen.queues.RECORD_TYPE_CMC.length + xen.queues.RECORD_TYPE_CPE.length, 1);
  });

  test('an attach refused for identity ends the run with exit status 2', async () => {
    const refused = { code: grpc.status.PERMISSION_DENIED, details: 'needs dom0', metadata: new grpc.Metadata() };
    const xen = fakeCoordinator({ attachError: refused });
    const dom0 = new Dom0(xen, { write: async () => {}, cpePollMs: 0 });
    await assert.rejects(dom0.run(), (err) => err.exitCode === 2 && /PERMISSION_DENIED: needs dom0/.test(err.message));
  });

  test('stop() ends a run that has nothing to do', async () => {
    const xen = fakeCoordinator();
    const dom0 = new Dom0(xen, { write: async () => {}, cpePollMs: 10 });
    const running = dom0.run();
    setTimeout(() => dom0.stop('SIGINT'), 30);
    const { reason, counters } = await running;
    assert.equal(reason, 'SIGINT');
    assert.ok(counters.polls >= 1);
  });
});
