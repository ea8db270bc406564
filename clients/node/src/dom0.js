// A minimal dom0: attach to the coordinator's virtual interrupt line and, for
// each interrupt, GET -> write the record to the log -> CLEAR that record id.
// CPE is not injected (the design settled on polling), so it is polled:
// GET CPE until SAL status -5, every cpePollMs.
//
// The order is the point: CLEAR is sent only after the log write has been
// flushed, and it names the record that was read, so the coordinator never
// clears a record this dom0 does not have. A record whose CLEAR fails stays in
// firmware and is delivered again; the log keeps it once (by pCPU + record id).

import { IDENTITY_CODES, describeRpcError } from './rpc-errors.js';
import { SAL_CALL_ERROR, SAL_NO_INFORMATION, SAL_OK, typeLabel } from './names.js';
import { recordLine } from './records.js';

export class Dom0Error extends Error {
  /** @param {string} message @param {number} exitCode 2 could not run, 1 failed while running */
  constructor(message, exitCode) {
    super(message);
    this.exitCode = exitCode;
  }
}

const CPE = 'RECORD_TYPE_CPE';
const BACKOFF_INITIAL_MS = 100;
const BACKOFF_MAX_MS = 5_000;

/** Outcomes of one GET -> log -> CLEAR pass. */
export const Outcome = Object.freeze({
  LOGGED: 'logged', // a new record, written and cleared
  DUPLICATE: 'duplicate', // already in the log (delivered again), cleared again
  NOTHING: 'nothing', // GET answered -5
  UNREACHABLE: 'unreachable', // GET answered -3: the coordinator keeps the entry
  NOT_CLEARED: 'not_cleared', // written, but CLEAR answered -3 or -5
  HELD: 'held', // a new record past --max: left in firmware for the next dom0
  FAILED: 'failed', // an RPC failed
});

const keyOf = (record) => `${record.pcpu}:${record.record_id}`;

export class Dom0 {
  /**
   * @param {import('./client.js').XenClient} client
   * @param {object} options
   * @param {(line: string) => Promise<void>} options.write  resolves once the line is durable (flushed)
   * @param {(message: string) => void} [options.log]         progress and warnings (stderr)
   * @param {number} [options.max]            stop after this many records (0: no limit)
   * @param {number} [options.cpePollMs]      CPE poll interval (0: do not poll)
   * @param {number} [options.connectTimeoutMs]
   * @param {string} [options.instance]
   * @param {boolean} [options.raw]           include the raw SAL bytes (base64) in each line
   * @param {Iterable<string>} [options.alreadyLogged]  "pcpu:record_id" keys already in the log
   */
  constructor(client, options) {
    this.client = client;
    this.write = options.write;
    this.log = options.log ?? (() => {});
    this.max = options.max ?? 0;
    this.cpePollMs = options.cpePollMs ?? 1000;
    this.connectTimeoutMs = options.connectTimeoutMs ?? 10_000;
    this.instance = options.instance ?? 'xenmca-node';
    this.raw = options.raw ?? false;
    this.counters = { interrupts: 0, attaches: 0, logged: 0, duplicates: 0, cleared: 0, polls: 0, call_errors: 0 };
    this.logged = new Set(options.alreadyLogged ?? []);
    this.uncleared = new Set(); // written this run, CLEAR not yet confirmed
    this.writing = 0; // log writes in progress
    this.stopReason = null;
    this.fatal = null;
    this.session = 0;
    this.chains = new Map();
    this.timers = new Set();
    this.attach = null;
    this.stopped = new Promise((resolve) => {
      this.resolveStopped = resolve;
    });
  }

  get stopping() {
    return this.stopReason !== null;
  }

  /** Ask the dom0 to stop: passes in progress finish, no new ones start. */
  stop(reason = 'stopped') {
    if (this.stopping) return;
    this.stopReason = reason;
    this.attach?.cancel();
    for (const timer of this.timers) {
      clearTimeout(timer.handle);
      timer.resolve();
    }
    this.timers.clear();
    this.resolveStopped();
  }

  /**
   * Run until --max records, stop(), or a fatal error.
   * @returns {Promise<{reason: string, counters: object}>}
   * @throws {Dom0Error}
   */
  async run() {
    try {
      await Promise.race([this.client.waitForReady(this.connectTimeoutMs), this.stopped]);
    } catch (err) {
      throw new Dom0Error(
        `cannot reach coordinator ${this.client.address} within ${this.connectTimeoutMs} ms: ${err.message}`,
        2,
      );
    }
    const loops = [this.attachLoop()];
    if (this.cpePollMs > 0) loops.push(this.pollLoop());
    await Promise.all(loops);
    // Passes in progress finish their GET -> write -> CLEAR.
    await Promise.all([...this.chains.values()]);
    if (this.fatal) throw this.fatal;
    return { reason: this.stopReason, counters: { ...this.counters } };
  }

  // -- the virtual interrupt line ---------------------------------------------

  async attachLoop() {
    let backoff = BACKOFF_INITIAL_MS;
    while (!this.stopping) {
      const session = ++this.session;
      let delivered = false;
      this.counters.attaches += 1;
      this.attach = this.client.attachDom0(
        (interrupt) => {
          delivered = true;
          this.onInterrupt(session, interrupt);
        },
        { instance: this.instance },
      );
      if (this.counters.attaches === 1) {
        this.log(`attaching to coordinator ${this.client.address} as ${this.instance}`);
      }
      const result = await Promise.race([this.attach.ended, this.stopped.then(() => null)]);
      if (this.stopping || result === null) return;
      if (!result.ok && IDENTITY_CODES.includes(result.error?.code)) {
        this.fatal = new Dom0Error(`AttachDom0 refused: ${describeRpcError(result.error)}`, 2);
        this.stop('refused');
        return;
      }
      const why = result.ok ? 'stream ended (another dom0 attached, or the coordinator stopped)' : describeRpcError(result.error);
      if (delivered) backoff = BACKOFF_INITIAL_MS;
      this.log(`detached: ${why}; re-attaching in ${backoff} ms`);
      await this.sleep(backoff);
      backoff = Math.min(BACKOFF_MAX_MS, backoff * 2);
    }
  }

  onInterrupt(session, interrupt) {
    this.counters.interrupts += 1;
    const type = interrupt.type;
    this.serial(type, async () => {
      // An interrupt from a stream that broke: the coordinator re-injects what matters.
      if (session !== this.session) return;
      await this.handleOnce(type);
    });
  }

  // -- polled CPE ---------------------------------------------------------------

  async pollLoop() {
    while (!this.stopping) {
      await this.serial(CPE, () => this.drain(CPE));
      this.counters.polls += 1;
      await this.sleep(this.cpePollMs);
    }
  }

  /** Passes until one does not clear a record. */
  async drain(type) {
    let outcome;
    do {
      outcome = await this.handleOnce(type);
    } while (!this.stopping && (outcome === Outcome.LOGGED || outcome === Outcome.DUPLICATE));
  }

  // -- one record -----------------------------------------------------------------

  /** One GET -> write -> CLEAR pass for type. Never throws. */
  async handleOnce(type) {
    if (this.stopping) return Outcome.NOTHING;
    const label = typeLabel(type);
    let got;
    try {
      got = await this.client.getStateInfo(type);
    } catch (err) {
      return this.callFailed(`${label} GET`, err);
    }
    if (got.sal_status === SAL_NO_INFORMATION) return Outcome.NOTHING;
    if (got.sal_status === SAL_CALL_ERROR) return Outcome.UNREACHABLE;
    if (got.sal_status !== SAL_OK) {
      this.log(`${label} GET: unexpected SAL status ${got.sal_status}`);
      return Outcome.NOTHING;
    }
    const record = got.record;
    const key = keyOf(record);
    const isNew = !this.logged.has(key);
    if (isNew) {
      // Writes of other types may be in progress: count them against --max too.
      if (this.max && this.counters.logged + this.writing >= this.max) return Outcome.HELD;
      this.writing += 1;
      try {
        await this.write(JSON.stringify(recordLine(record, { byIpi: got.by_ipi, raw: this.raw })));
      } catch (err) {
        // Not durable, so not cleared: the record stays in firmware.
        this.fatal = new Dom0Error(`cannot write record ${key} to the log: ${err.message}`, 1);
        this.stop('log write failed');
        return Outcome.FAILED;
      } finally {
        this.writing -= 1;
      }
      this.logged.add(key);
      this.uncleared.add(key);
      this.counters.logged += 1;
    } else {
      this.counters.duplicates += 1;
    }

    let cleared;
    try {
      cleared = await this.client.clearStateInfo(type, record.record_id);
    } catch (err) {
      return this.callFailed(`${label} CLEAR ${key}`, err);
    }
    if (cleared.sal_status !== SAL_OK) {
      this.log(`${label} CLEAR ${key}: SAL status ${cleared.sal_status}; it will be delivered again`);
      return Outcome.NOT_CLEARED;
    }
    this.counters.cleared += 1;
    this.uncleared.delete(key);
    if (this.max && this.counters.logged >= this.max && this.uncleared.size === 0) {
      this.stop(`${this.max} records logged`);
    }
    return isNew ? Outcome.LOGGED : Outcome.DUPLICATE;
  }

  callFailed(what, err) {
    this.counters.call_errors += 1;
    this.log(`${what} failed: ${describeRpcError(err)}`);
    return Outcome.FAILED;
  }

  // -- helpers ----------------------------------------------------------------------

  /** Run fn after the previous pass of the same type (vCPU0 handles one at a time). */
  serial(type, fn) {
    const previous = this.chains.get(type) ?? Promise.resolve();
    const next = previous.then(fn).catch((err) => this.log(`${typeLabel(type)} handler failed: ${err.stack ?? err}`));
    this.chains.set(type, next);
    return next;
  }

  /** Sleep that stop() cuts short. */
  sleep(ms) {
    if (this.stopping) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = { resolve };
      timer.handle = setTimeout(() => {
        this.timers.delete(timer);
        resolve();
      }, ms);
      this.timers.add(timer);
    });
  }
}
