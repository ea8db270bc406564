#!/usr/bin/env node
// xenmca-node: the coordinator's status, and a minimal dom0. See ../README.md.

import { main } from '../src/cli.js';

// A closed stdout (EPIPE) is reported by the write callbacks; do not crash on the event.
process.stdout.on('error', () => {});

process.exitCode = await main(process.argv.slice(2));

// Everything is closed by now; if some handle lingers, do not hang the caller.
setTimeout(() => process.exit(), 2000).unref();
