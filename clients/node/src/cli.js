// The xenmca-node command: `status` and `dom0`. main() returns the exit
// status (0 ok, 1 failed while running, 2 could not run: bad arguments, an
// unreadable token file, an unreachable coordinator, a refused identity) and
// reports every error in one line on stderr.

import fs from 'node:fs';
import { parseArgs } from 'node:util';

import { connect, DEFAULT_DEADLINE_MS } from './client.js';
import { Dom0, Dom0Error } from './dom0.js';
import { describeRpcError } from './rpc-errors.js';
import { statusLines } from './status.js';
import { TokenFileError, resolveToken } from './tokens.js';

export const PROG = 'xenmca-node';

export const USAGE = `usage: ${PROG} <command> [options]

commands:
  status --xen HOST:PORT [--token-file FILE] [TLS] [--json] [--timeout MS]
      print the coordinator's state: pCPUs, dom0, queues, counters, throttling
  dom0 --xen HOST:PORT [--token-file FILE] [TLS] [--max N] [--cpe-poll MS] [--out FILE]
       [--raw] [--instance NAME] [--connect-timeout MS] [--timeout MS]
      act as dom0: attach, and for each virtual interrupt GET the record, print
      it as one JSON line (flushed; with --out, appended and fsync'd), then
      CLEAR that record id; poll CPE every --cpe-poll ms (default 1000, 0: off);
      stop after --max records (default: no limit) or on SIGINT/SIGTERM

options:
  --token-file FILE   JSON (or flat YAML) {identity: token}; default $XENMCA_TOKEN_FILE.
                      status presents the operator token (else dom0's), dom0 dom0's
  --tls-cert FILE --tls-key FILE --tls-ca FILE   (TLS: all three or none)
                      mutual TLS with this client certificate, its key and the CA
                      that signed the coordinator's; the identity is the
                      certificate's CN (\`xenmca certs generate\` makes them)
  --timeout MS        deadline of each unary call (default ${DEFAULT_DEADLINE_MS})
  -h, --help          this help

exit status: 0 ok, 1 failed while running, 2 could not run`;

/** A problem reported in one line with exit status 2 (could not run). */
class CommandError extends Error {}

const COMMON = {
  xen: { type: 'string' },
  'token-file': { type: 'string' },
  'tls-cert': { type: 'string' },
  'tls-key': { type: 'string' },
  'tls-ca': { type: 'string' },
  timeout: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
};

const OPTIONS = {
  status: { ...COMMON, json: { type: 'boolean' } },
  dom0: {
    ...COMMON,
    max: { type: 'string' },
    'cpe-poll': { type: 'string' },
    out: { type: 'string' },
    raw: { type: 'boolean' },
    instance: { type: 'string' },
    'connect-timeout': { type: 'string' },
  },
};

/**
 * Check HOST:PORT (or [v6]:PORT) the way the Python tools do.
 * @param {string} text
 * @returns {{host: string, port: number}}
 * @throws {CommandError}
 */
export function parseHostPort(text) {
  const match = /^(\[[0-9A-Fa-f:.]+\]|[^\s:[\]/]+):(\d{1,5})$/.exec(text ?? '');
  const port = match ? Number(match[2]) : NaN;
  if (!match || port < 1 || port > 65535) {
    throw new CommandError(`address '${text}' is not HOST:PORT`);
  }
  return { host: match[1], port };
}

function nonNegativeInt(name, text, fallback) {
  if (text === undefined) return fallback;
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(Number(text))) {
    throw new CommandError(`--${name} must be a whole number >= 0 (got '${text}')`);
  }
  return Number(text);
}

/**
 * Parse argv (without node and the script) into {command, options}.
 * @param {string[]} argv
 * @returns {{command: string, help?: boolean, options: Record<string, any>}}
 * @throws {CommandError}
 */
export function parseCommandLine(argv) {
  const [command, ...rest] = argv;
  if (command === undefined) throw new CommandError('missing command (status or dom0); see --help');
  if (command === '-h' || command === '--help' || command === 'help') return { command: 'help', options: {} };
  if (!Object.hasOwn(OPTIONS, command)) {
    throw new CommandError(`unknown command '${command}' (choose status or dom0)`);
  }
  let values;
  try {
    ({ values } = parseArgs({ args: rest, options: OPTIONS[command], strict: true, allowPositionals: false }));
  } catch (err) {
    throw new CommandError(err.message);
  }
  if (values.help) return { command: 'help', options: {} };
  if (values.xen === undefined) throw new CommandError('--xen HOST:PORT is required');
  try {
    parseHostPort(values.xen);
  } catch (err) {
    throw new CommandError(`--xen: ${err.message}`);
  }
  if (values.timeout !== undefined && nonNegativeInt('timeout', values.timeout) === 0) {
    throw new CommandError('--timeout must be at least 1 ms');
  }
  const tlsGiven = ['tls-cert', 'tls-key', 'tls-ca'].filter((name) => values[name] !== undefined);
  if (tlsGiven.length !== 0 && tlsGiven.length !== 3) {
    throw new CommandError('--tls-cert, --tls-key and --tls-ca go together (all three or none)');
  }
  const options = {
    xen: values.xen,
    tokenFile: values['token-file'],
    tls: tlsGiven.length === 3 ? { cert: values['tls-cert'], key: values['tls-key'], ca: values['tls-ca'] } : null,
    timeoutMs: nonNegativeInt('timeout', values.timeout, DEFAULT_DEADLINE_MS),
  };
  if (command === 'status') {
    options.json = Boolean(values.json);
  } else {
    options.max = nonNegativeInt('max', values.max, 0);
    options.cpePollMs = nonNegativeInt('cpe-poll', values['cpe-poll'], 1000);
    options.connectTimeoutMs = nonNegativeInt('connect-timeout', values['connect-timeout'], 10_000);
    options.out = values.out;
    options.raw = Boolean(values.raw);
    options.instance = values.instance ?? `xenmca-node-${process.pid}`;
  }
  return { command, options };
}

const writeFlushed = (stream, text) =>
  new Promise((resolve, reject) => {
    stream.write(text, (err) => (err ? reject(err) : resolve()));
  });

/**
 * The log sink for dom0: stdout (flushed), or a file (appended, fsync'd) whose
 * existing lines are the records already logged.
 * @returns {Promise<{write: (line: string) => Promise<void>, alreadyLogged: string[], close: () => Promise<void>}>}
 */
async function openLog(out, stdout) {
  if (!out) {
    return { write: (line) => writeFlushed(stdout, `${line}\n`), alreadyLogged: [], close: async () => {} };
  }
  let existing = '';
  try {
    existing = fs.readFileSync(out, 'utf8');
  } catch (err) {
    if (err.code !== 'ENOENT') throw new CommandError(`--out: cannot read ${out}: ${err.code ?? err.message}`);
  }
  const alreadyLogged = [];
  for (const text of existing.split('\n')) {
    try {
      const line = JSON.parse(text);
      if (line && line.pcpu !== undefined && line.record_id !== undefined) {
        alreadyLogged.push(`${line.pcpu}:${line.record_id}`);
      }
    } catch {
      // A torn last line (a crash mid-write) is not a record: it will be delivered again.
    }
  }
  let handle;
  try {
    handle = await fs.promises.open(out, 'a');
  } catch (err) {
    throw new CommandError(`--out: cannot open ${out}: ${err.code ?? err.message}`);
  }
  let prefix = existing && !existing.endsWith('\n') ? '\n' : '';
  return {
    alreadyLogged,
    async write(line) {
      await handle.write(`${prefix}${line}\n`);
      prefix = '';
      await handle.datasync();
    },
    close: () => handle.close(),
  };
}

/**
 * The PEM files of --tls-cert/--tls-key/--tls-ca as Buffers (null without TLS).
 * @throws {CommandError} naming the file that cannot be read or is not PEM
 */
export function readTlsFiles(tls) {
  if (!tls) return null;
  const read = (flag, file, marker, what) => {
    let bytes;
    try {
      bytes = fs.readFileSync(file);
    } catch (err) {
      throw new CommandError(`--${flag}: cannot read ${file}: ${err.code ?? err.message}`);
    }
    if (!bytes.includes(marker)) throw new CommandError(`--${flag}: ${file} holds no PEM ${what}`);
    return bytes;
  };
  return {
    cert: read('tls-cert', tls.cert, '-----BEGIN CERTIFICATE-----', 'certificate'),
    key: read('tls-key', tls.key, 'PRIVATE KEY-----', 'private key'),
    ca: read('tls-ca', tls.ca, '-----BEGIN CERTIFICATE-----', 'certificate'),
  };
}

async function runStatus(options, io) {
  const token = resolveToken(options.tokenFile, ['operator', 'dom0', 'xen']);
  const tls = readTlsFiles(options.tls);
  const client = connect(options.xen, token, { deadlineMs: options.timeoutMs, tls });
  let state;
  try {
    state = await client.status();
  } catch (err) {
    throw new CommandError(`${options.xen}: ${describeRpcError(err)}`);
  } finally {
    client.close();
  }
  const text = options.json ? JSON.stringify(state, null, 2) : statusLines(state, options.xen).join('\n');
  await writeFlushed(io.stdout, `${text}\n`);
  return 0;
}

async function runDom0(options, io, log) {
  const token = resolveToken(options.tokenFile, ['dom0']);
  const tls = readTlsFiles(options.tls);
  const sink = await openLog(options.out, io.stdout);
  const client = connect(options.xen, token, { deadlineMs: options.timeoutMs, tls });
  const dom0 = new Dom0(client, {
    write: sink.write,
    log,
    max: options.max,
    cpePollMs: options.cpePollMs,
    connectTimeoutMs: options.connectTimeoutMs,
    instance: options.instance,
    raw: options.raw,
    alreadyLogged: sink.alreadyLogged,
  });
  const onSignal = (signal) => dom0.stop(signal);
  const signals = io.handleSignals === false ? [] : ['SIGINT', 'SIGTERM'];
  for (const signal of signals) process.on(signal, onSignal);
  try {
    const { reason, counters } = await dom0.run();
    const c = counters;
    log(
      `stopped (${reason}): ${c.logged} records logged, ${c.duplicates} duplicates, ` +
        `${c.cleared} cleared, ${c.interrupts} interrupts, ${c.polls} CPE polls, ${c.call_errors} call errors`,
    );
    return 0;
  } finally {
    for (const signal of signals) process.off(signal, onSignal);
    client.close();
    await sink.close();
  }
}

/**
 * Run the command line; resolves to the exit status.
 * @param {string[]} argv arguments after the script name
 * @param {{stdout?: NodeJS.WritableStream, stderr?: NodeJS.WritableStream, handleSignals?: boolean}} [io]
 * @returns {Promise<number>}
 */
export async function main(argv, io = {}) {
  const stdout = io.stdout ?? process.stdout;
  const stderr = io.stderr ?? process.stderr;
  let command = Object.hasOwn(OPTIONS, argv[0] ?? '') ? argv[0] : null;
  const fail = (message, status) => {
    const where = command ? `${PROG} ${command}` : PROG;
    stderr.write(`${where}: error: ${String(message).replace(/\s*\n\s*/g, ' ')}\n`);
    return status;
  };
  try {
    const parsed = parseCommandLine(argv);
    if (parsed.command === 'help') {
      await writeFlushed(stdout, `${USAGE}\n`);
      return 0;
    }
    const log = (message) => stderr.write(`${PROG} ${command}: ${message}\n`);
    const ioWith = { ...io, stdout, stderr };
    return command === 'status' ? await runStatus(parsed.options, ioWith) : await runDom0(parsed.options, ioWith, log);
  } catch (err) {
    if (err instanceof CommandError || err instanceof TokenFileError) return fail(err.message, 2);
    if (err instanceof Dom0Error) return fail(err.message, err.exitCode);
    return fail(err?.stack ?? err, 1);
  }
}
