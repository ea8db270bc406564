// The command line without a testbed: argument parsing, one-line errors and exit statuses.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { describe, test } from 'node:test';

import { main, parseCommandLine, parseHostPort } from '../src/cli.js';
import { runCli } from './run-cli.js';

/** Run main() in-process; resolves to {code, stdout, stderr}. */
async function runMain(argv) {
  let stdout = '';
  let stderr = '';
  const sink = (append) =>
    new Writable({
      write(chunk, _encoding, done) {
        append(chunk.toString());
        done();
      },
    });
  const code = await main(argv, {
    stdout: sink((text) => (stdout += text)),
    stderr: sink((text) => (stderr += text)),
    handleSignals: false,
  });
  return { code, stdout, stderr };
}

const oneLine = (text) => text.endsWith('\n') && text.split('\n').length === 2;

describe('parseHostPort', () => {
  for (const ok of ['127.0.0.1:50051', 'localhost:1', 'xen-0.example:65535', '[::1]:8080']) {
    test(`accepts ${ok}`, () => assert.ok(parseHostPort(ok).port > 0));
  }
  for (const bad of ['nonsense', '127.0.0.1', ':50051', '127.0.0.1:', 'host:0', 'host:65536', 'host:12a', 'a b:1', '::1:80', '']) {
    test(`rejects '${bad}'`, () => assert.throws(() => parseHostPort(bad), /is not HOST:PORT/));
  }
});

describe('parseCommandLine', () => {
  test('status with defaults', () => {
    assert.deepEqual(parseCommandLine(['status', '--xen', '127.0.0.1:5']), {
      command: 'status',
      options: { xen: '127.0.0.1:5', tokenFile: undefined, tls: null, timeoutMs: 10_000, json: false },
    });
  });

  test('dom0 options', () => {
    const { options } = parseCommandLine([
      'dom0', '--xen', 'h:1', '--token-file', 't.json', '--max', '7', '--cpe-poll', '0', '--raw',
      '--instance', 'n', '--connect-timeout', '500', '--timeout', '2000', '--out', 'log.jsonl',
    ]);
    assert.deepEqual(options, {
      xen: 'h:1', tokenFile: 't.json', tls: null, timeoutMs: 2000, max: 7, cpePollMs: 0, connectTimeoutMs: 500,
      out: 'log.jsonl', raw: true, instance: 'n',
    });
  });

  test('mutual TLS files', () => {
    const { options } = parseCommandLine([
      'status', '--xen', 'h:1', '--tls-cert', 'c.crt', '--tls-key', 'c.key', '--tls-ca', 'ca.crt',
    ]);
    assert.deepEqual(options.tls, { cert: 'c.crt', key: 'c.key', ca: 'ca.crt' });
  });

  test('help', () => {
    assert.equal(parseCommandLine(['--help']).command, 'help');
    assert.equal(parseCommandLine(['dom0', '-h']).command, 'help');
  });
});

describe('one-line errors, exit 2', () => {
  const cases = [
    [[], /^xenmca-node: error: missing command/],
    [['frobnicate'], /^xenmca-node: error: unknown command 'frobnicate'/],
    [['status'], /^xenmca-node status: error: --xen HOST:PORT is required/],
    [['status', '--xen', 'nonsense'], /^xenmca-node status: error: --xen: address 'nonsense' is not HOST:PORT/],
    [['status', '--xen', 'h:1', '--bogus'], /^xenmca-node status: error: Unknown option '--bogus'/],
    [['status', '--xen', 'h:1', 'extra'], /^xenmca-node status: error: .*positional/i],
    [['dom0', '--xen', 'h:1', '--max', 'many'], /^xenmca-node dom0: error: --max must be a whole number >= 0 \(got 'many'\)/],
    [['dom0', '--xen', 'h:1', '--cpe-poll=-1'], /^xenmca-node dom0: error: --cpe-poll must be a whole number/],
    [['dom0', '--xen', 'h:1', '--cpe-poll', '-1'], /^xenmca-node dom0: error: Option '--cpe-poll' argument is ambiguous/],
    [['status', '--xen', 'h:1', '--timeout', '0'], /^xenmca-node status: error: --timeout must be at least 1 ms/],
    [['status', '--xen', 'h:1', '--token-file', '/nonexistent/tokens.json'], /cannot read token file: ENOENT/],
    [['status', '--xen', 'h:1', '--tls-cert', 'c.crt'], /^xenmca-node status: error: --tls-cert, --tls-key and --tls-ca go together/],
    [['dom0', '--xen', 'h:1', '--tls-cert', 'c', '--tls-key', 'k'], /^xenmca-node dom0: error: --tls-cert, --tls-key and --tls-ca go together/],
    [['status', '--xen', 'h:1', '--tls-cert', '/nonexistent/c.crt', '--tls-key', 'k', '--tls-ca', 'ca'], /^xenmca-node status: error: --tls-cert: cannot read \/nonexistent\/c\.crt: ENOENT/],
  ];
  for (const [argv, pattern] of cases) {
    test(argv.join(' ') || '(no arguments)', async () => {
      const { code, stdout, stderr } = await runMain(argv);
      assert.equal(code, 2);
      assert.equal(stdout, '');
      assert.ok(oneLine(stderr), `one line: ${JSON.stringify(stderr)}`);
      assert.match(stderr, pattern);
    });
  }

  test('a token file without a dom0 entry', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'xenmca-node-cli-'));
    const book = path.join(dir, 'tokens.json');
    fs.writeFileSync(book, JSON.stringify({ operator: 'operator-token' }));
    try {
      const { code, stderr } = await runMain(['dom0', '--xen', '127.0.0.1:1', '--token-file', book]);
      assert.equal(code, 2);
      assert.ok(oneLine(stderr));
      assert.match(stderr, /no 'dom0' entry/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test('a TLS file that is not PEM', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'xenmca-node-cli-'));
    const junk = path.join(dir, 'junk.pem');
    fs.writeFileSync(junk, 'not a certificate');
    try {
      const { code, stdout, stderr } = await runMain([
        'status', '--xen', '127.0.0.1:1', '--tls-cert', junk, '--tls-key', junk, '--tls-ca', junk,
      ]);
      assert.equal(code, 2);
      assert.equal(stdout, '');
      assert.ok(oneLine(stderr), stderr);
      assert.match(stderr, /--tls-cert: .*junk\.pem holds no PEM certificate/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test('status of an address where nothing listens', async () => {
    const { code, stdout, stderr } = await runMain(['status', '--xen', '127.0.0.1:1', '--timeout', '3000']);
    assert.equal(code, 2);
    assert.equal(stdout, '');
    assert.ok(oneLine(stderr), stderr);
    assert.match(stderr, /^xenmca-node status: error: 127\.0\.0\.1:1: (UNAVAILABLE|DEADLINE_EXCEEDED)/);
  });

  test('dom0 that cannot reach its coordinator', async () => {
    const { code, stderr } = await runMain(['dom0', '--xen', '127.0.0.1:1', '--connect-timeout', '300']);
    assert.equal(code, 2);
    assert.match(stderr.trim().split('\n').at(-1), /^xenmca-node dom0: error: cannot reach coordinator 127\.0\.0\.1:1 within 300 ms/);
  });
});

describe('the executable', () => {
  test('bad address: exit 2, one line on stderr, nothing on stdout', async () => {
    const result = await runCli(['status', '--xen', 'not-an-address']);
    assert.equal(result.code, 2);
    assert.equal(result.stdout, '');
    assert.equal(result.stderr, "xenmca-node status: error: --xen: address 'not-an-address' is not HOST:PORT\n");
  });

  test('bad address for dom0 too', async () => {
    const result = await runCli(['dom0', '--xen', 'host:99999']);
    assert.equal(result.code, 2);
    assert.ok(oneLine(result.stderr), result.stderr);
  });

  test('--help: usage on stdout, exit 0', async () => {
    const result = await runCli(['--help']);
    assert.equal(result.code, 0);
    assert.match(result.stdout, /^usage: xenmca-node <command>/);
    assert.match(result.stdout, /status --xen HOST:PORT/);
    assert.match(result.stdout, /dom0 --xen HOST:PORT/);
    assert.equal(result.stderr, '');
  });
});
