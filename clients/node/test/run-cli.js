// Test helper: the Node CLI (bin/xenmca-node.js) as a child process, run to
// completion. The live behaviours (a real testbed) are in the shared
// conformance list, tests/clients/ at the repository root: `npm run test:conformance`.

import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export const CLI = fileURLToPath(new URL('../bin/xenmca-node.js', import.meta.url));

/**
 * Run a command to completion; never throws on a non-zero exit. Killed after timeoutMs.
 * @param {string} command
 * @param {string[]} args
 * @param {{timeoutMs?: number, env?: object}} [options]
 * @returns {Promise<{code: number|null, signal: string|null, stdout: string, stderr: string}>}
 */
export function run(command, args, { timeoutMs = 60_000, env } = {}) {
  return new Promise((resolve) => {
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (text) => {
      stdout += text;
    });
    child.stderr.setEncoding('utf8').on('data', (text) => {
      stderr += text;
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', (err) => {
      clearTimeout(timer);
      resolve({ code: null, signal: null, stdout, stderr: `${stderr}spawn failed: ${err.message}\n` });
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

/** Run the Node CLI to completion. */
export const runCli = (args, options) => run(process.execPath, [CLI, ...args], options);
