// Test helpers: a real local testbed (pCPU hosts and a coordinator as child
// processes, no Python dom0), the `xenmca` command, and the Node CLI as a
// child process.
//
// `xenmca` is looked up on PATH (CI puts the project's venv bin there), then
// in $XENMCA_BIN.

import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const CLI = fileURLToPath(new URL('../bin/xenmca-node.js', import.meta.url));

/** Every child started here, killed for sure when the test process exits. */
const children = new Set();
process.on('exit', () => {
  for (const child of children) {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  }
});

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** The xenmca executable: PATH first, then $XENMCA_BIN; throws with a hint if neither. */
export function findXenmca() {
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    if (!dir) continue;
    const candidate = path.join(dir, 'xenmca');
    try {
      fs.accessSync(candidate, fs.constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  const fromEnv = process.env.XENMCA_BIN;
  if (fromEnv) {
    fs.accessSync(fromEnv, fs.constants.X_OK);
    return fromEnv;
  }
  throw new Error('xenmca not found: put the project venv bin on PATH or set XENMCA_BIN');
}

/**
 * Poll check() until it returns a truthy value; throws after timeoutMs with what it saw last.
 * @template T
 * @param {() => Promise<T>|T} check
 * @param {{timeoutMs?: number, intervalMs?: number, what?: string}} [options]
 * @returns {Promise<T>}
 */
export async function waitFor(check, { timeoutMs = 15_000, intervalMs = 100, what = 'condition' } = {}) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      const value = await check();
      if (value) return value;
      last = value;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what} (last: ${last?.message ?? JSON.stringify(last)})`);
    }
    await sleep(intervalMs);
  }
}

/**
 * Start a child process; stdout/stderr collected (and optionally copied to files).
 * @param {string} command
 * @param {string[]} args
 * @param {{logFile?: string, env?: object}} [options]
 */
export function startProcess(command, args, { logFile, env } = {}) {
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
  children.add(child);
  const proc = {
    child,
    stdout: '',
    stderr: '',
    exited: new Promise((resolve) => {
      child.on('exit', (code, signal) => {
        children.delete(child);
        resolve({ code, signal });
      });
      child.on('error', (err) => {
        children.delete(child);
        proc.stderr += `spawn failed: ${err.message}\n`;
        resolve({ code: null, signal: null, error: err });
      });
    }),
    get running() {
      return child.exitCode === null && child.signalCode === null;
    },
    /** Lines of stdout so far (complete lines only). */
    lines() {
      return proc.stdout.split('\n').slice(0, -1);
    },
    /** SIGINT, then SIGKILL if it has not exited after graceMs; resolves to its exit. */
    async stop(graceMs = 10_000) {
      if (proc.running) {
        child.kill('SIGINT');
        const timer = setTimeout(() => proc.running && child.kill('SIGKILL'), graceMs);
        const result = await proc.exited;
        clearTimeout(timer);
        return result;
      }
      return proc.exited;
    },
  };
  const log = logFile ? fs.createWriteStream(logFile) : null;
  child.stdout.setEncoding('utf8').on('data', (text) => {
    proc.stdout += text;
    log?.write(text);
  });
  child.stderr.setEncoding('utf8').on('data', (text) => {
    proc.stderr += text;
    log?.write(text);
  });
  proc.exited.then(() => log?.end());
  return proc;
}

/**
 * Run a command to completion; never throws on a non-zero exit.
 * @returns {Promise<{code: number|null, signal: string|null, stdout: string, stderr: string}>}
 */
export async function run(command, args, { timeoutMs = 60_000, env } = {}) {
  const proc = startProcess(command, args, { env });
  const timer = setTimeout(() => proc.running && proc.child.kill('SIGKILL'), timeoutMs);
  const { code, signal } = await proc.exited;
  clearTimeout(timer);
  return { code, signal, stdout: proc.stdout, stderr: proc.stderr };
}

/** Run the Node CLI (bin/xenmca-node.js) to completion. */
export const runCli = (args, options) => run(process.execPath, [CLI, ...args], options);

/** Start the Node CLI as a long-running child. */
export const startCli = (args, options) => startProcess(process.execPath, [CLI, ...args], options);

async function readJsonWhenReady(file, proc, what, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return JSON.parse(fs.readFileSync(file, 'utf8'));
    } catch {
      // not written yet, or being written
    }
    const tail = () => proc.stderr.trim().split('\n').slice(-5).join(' | ');
    if (!proc.running) throw new Error(`${what} exited before it was ready: ${tail()}`);
    if (Date.now() > deadline) throw new Error(`${what} not ready after ${timeoutMs} ms: ${tail()}`);
    await sleep(100);
  }
}

/**
 * A testbed without dom0: `xenmca serve pcpu` and `xenmca serve xen` on
 * loopback, free ports, identity checks on with fresh random tokens; with
 * tls, mutual TLS instead (test certificates from `xenmca certs generate`,
 * identities from the certificates' CN, no token file).
 * @param {{pcpus?: number, startTimeoutMs?: number, tls?: boolean}} [options]
 */
export async function startTestbed({ pcpus = 4, startTimeoutMs = 60_000, tls = false } = {}) {
  const xenmca = findXenmca();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'xenmca-node-test-'));
  const token = () => crypto.randomBytes(18).toString('base64url');
  const tokens = { dom0: token(), operator: token(), xen: token() };
  const tokensPath = path.join(dir, 'tokens.json');
  fs.writeFileSync(tokensPath, JSON.stringify(tokens, null, 2), { mode: 0o600 });

  const certs = path.join(dir, 'certs');
  if (tls) {
    const made = await run(xenmca, ['certs', 'generate', '--dir', certs]);
    if (made.code !== 0) throw new Error(`xenmca certs generate failed: ${made.stderr}`);
  }
  /** --tls-cert/--tls-key/--tls-ca of one identity's certificate. */
  const tlsFlags = (identity) => [
    '--tls-cert', path.join(certs, `${identity}.crt`),
    '--tls-key', path.join(certs, `${identity}.key`),
    '--tls-ca', path.join(certs, 'ca.crt'),
  ];
  /** How a component or a client proves who it is: its certificate, or the token file. */
  const credentialFlags = (identity) => (tls ? tlsFlags(identity) : ['--token-file', tokensPath]);

  const procs = [];
  const testbed = {
    xenmca,
    dir,
    tls,
    tlsFlags,
    credentialFlags,
    tokens,
    tokensPath,
    /** @type {Record<string, string>} pCPU number -> SalService address */
    pcpuAddrs: {},
    xen: '',
    /** Stop the coordinator, then the pCPUs: SIGINT, SIGKILL after a grace period. */
    async stop() {
      for (const proc of [...procs].reverse()) await proc.stop();
    },
    /** Delete the working folder (kept when $XENMCA_KEEP_TESTBED is set, for debugging). */
    remove() {
      if (!process.env.XENMCA_KEEP_TESTBED) fs.rmSync(dir, { recursive: true, force: true });
    },
    /** The last lines the components logged, for failure messages. */
    logs() {
      return procs.map((p) => p.stderr.trim().split('\n').slice(-10).join('\n')).join('\n---\n');
    },
  };
  try {
    const pcpuReady = path.join(dir, 'pcpus.json');
    const pcpuProc = startProcess(
      xenmca,
      ['serve', 'pcpu', '--pcpus', `0-${pcpus - 1}`, '--host', '127.0.0.1', '--base-port', '0',
        '--ready-file', pcpuReady, ...credentialFlags('pcpu')],
      { logFile: path.join(dir, 'pcpu.log') },
    );
    procs.push(pcpuProc);
    testbed.pcpuAddrs = await readJsonWhenReady(pcpuReady, pcpuProc, 'xenmca serve pcpu', startTimeoutMs);

    const xenReady = path.join(dir, 'xen.json');
    const xenProc = startProcess(
      xenmca,
      ['serve', 'xen', '--listen', '127.0.0.1:0', '--inventory', pcpuReady, ...credentialFlags('xen'),
        '--ready-file', xenReady, '--throttle-preset', 'fast'],
      { logFile: path.join(dir, 'xen.log') },
    );
    procs.push(xenProc);
    testbed.xen = (await readJsonWhenReady(xenReady, xenProc, 'xenmca serve xen', startTimeoutMs)).address;
  } catch (err) {
    await testbed.stop();
    throw err;
  }
  return testbed;
}

/**
 * `xenmca inject` on one pCPU; returns the record ids it printed ("ids A-B").
 * @returns {Promise<string[]>} the ids, as decimal strings
 */
export async function inject(testbed, pcpu, type, count) {
  const result = await run(testbed.xenmca, [
    'inject', '--pcpu', testbed.pcpuAddrs[pcpu], '--type', type, '--count', String(count),
    ...testbed.credentialFlags('operator'),
  ]);
  const match = /accepted (\d+), stored (\d+), overflowed (\d+), ids (\d+)-(\d+)/.exec(result.stdout);
  if (result.code !== 0 || !match) {
    throw new Error(`xenmca inject failed (exit ${result.code}): ${result.stdout} ${result.stderr}`);
  }
  const [, accepted, stored, overflowed, first, last] = match;
  if (Number(stored) !== count || Number(accepted) !== count || Number(overflowed) !== 0) {
    throw new Error(`xenmca inject stored ${stored} of ${count}: ${result.stdout}`);
  }
  const ids = [];
  for (let id = BigInt(first); id <= BigInt(last); id++) ids.push(id.toString());
  return ids;
}

/** `xenmca status --pcpu ... --json`: pending records per type name (absent counts as 0). */
export async function pcpuPending(testbed, pcpu) {
  const result = await run(testbed.xenmca, [
    'status', '--pcpu', testbed.pcpuAddrs[pcpu], '--json', ...testbed.credentialFlags('operator'),
  ]);
  if (result.code !== 0) throw new Error(`xenmca status --pcpu failed: ${result.stderr}`);
  const state = JSON.parse(result.stdout);
  return Object.fromEntries((state.types ?? []).map((t) => [t.type, Number(t.pending ?? 0)]));
}
