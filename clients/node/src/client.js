// A small client of the xenmca coordinator (xenmca.hypervisor.v1.HypervisorService).
//
//   import { connect } from 'xenmca-node';
//   const xen = connect('127.0.0.1:50051', token);
//   console.log(await xen.status());
//   xen.close();
//
// Messages are plain objects as @grpc/proto-loader decodes them with the
// options in protos.js: proto field names, enum names, uint64 as strings.

import * as grpc from '@grpc/grpc-js';

import { recordTypeEnum } from './names.js';
import { loadXenmca } from './protos.js';

/** Deadline of every unary call unless connect() is told otherwise. */
export const DEFAULT_DEADLINE_MS = 10_000;

/** The same limits and keepalive as the Python channels (xenmca.rpc.channels). */
export const CHANNEL_OPTIONS = Object.freeze({
  'grpc.max_receive_message_length': 4 * 1024 * 1024,
  'grpc.max_send_message_length': 4 * 1024 * 1024,
  'grpc.keepalive_time_ms': 10_000,
  'grpc.keepalive_timeout_ms': 5_000,
  'grpc.keepalive_permit_without_calls': 1,
  'grpc.initial_reconnect_backoff_ms': 100,
  'grpc.max_reconnect_backoff_ms': 2_000,
});

/**
 * @typedef {object} AttachHandle
 * @property {() => void} cancel     ends the stream (the coordinator sees dom0 detach)
 * @property {Promise<{ok: boolean, error?: any}>} ended
 *   settles when the stream ends: ok true for a clean end or cancel(), else the error
 */

/**
 * @typedef {object} XenClient
 * @property {() => Promise<any>} status  DescribeHypervisor
 * @property {(onInterrupt: (interrupt: {type: string, injection_id: string, reinjected: boolean}) => void,
 *             options?: {instance?: string}) => AttachHandle} attachDom0
 * @property {(type: string|number) => Promise<{sal_status: number, record: any, by_ipi: boolean}>} getStateInfo
 * @property {(type: string|number) => Promise<{sal_status: number, size: number}>} getStateInfoSize
 * @property {(type: string|number, recordId?: string|number|bigint) =>
 *             Promise<{sal_status: number, cleared_record_id: string, pcpu: number, by_ipi: boolean}>} clearStateInfo
 * @property {(timeoutMs: number) => Promise<void>} waitForReady  rejects if not connected in time
 * @property {() => void} close
 * @property {string} address
 */

/**
 * A client of the coordinator at address, presenting token (if any) as
 * `authorization: Bearer <token>` on every call. Plaintext unless options.tls
 * gives the PEM bytes of a CA, a client certificate and its key: then mutual
 * TLS, and the coordinator takes the caller's identity from the certificate's CN
 * (a token, if also given, must name the same identity).
 *
 * @param {string} address HOST:PORT
 * @param {string|null} [token]
 * @param {{deadlineMs?: number, protosRoot?: string, channelOptions?: object,
 *          tls?: {ca: Buffer, cert: Buffer, key: Buffer}}} [options]
 * @returns {XenClient}
 */
export function connect(address, token, options = {}) {
  const deadlineMs = options.deadlineMs ?? DEFAULT_DEADLINE_MS;
  const xenmca = loadXenmca(options.protosRoot);
  const credentials = options.tls
    ? grpc.credentials.createSsl(options.tls.ca, options.tls.key, options.tls.cert)
    : grpc.credentials.createInsecure();
  const stub = new xenmca.hypervisor.v1.HypervisorService(address, credentials, {
    ...CHANNEL_OPTIONS,
    ...options.channelOptions,
  });

  const metadata = () => {
    const md = new grpc.Metadata();
    if (token) md.set('authorization', `Bearer ${token}`);
    return md;
  };

  const unary = (method, request) =>
    new Promise((resolve, reject) => {
      stub[method](request, metadata(), { deadline: Date.now() + deadlineMs }, (err, reply) =>
        err ? reject(err) : resolve(reply),
      );
    });

  return {
    address,

    status: () => unary('DescribeHypervisor', {}),

    getStateInfo: (type) => unary('GetStateInfo', { type: recordTypeEnum(type) }),

    getStateInfoSize: (type) => unary('GetStateInfoSize', { type: recordTypeEnum(type) }),

    clearStateInfo(type, recordId) {
      const request = { type: recordTypeEnum(type) };
      if (recordId !== undefined && recordId !== null) request.record_id = String(recordId);
      return unary('ClearStateInfo', request);
    },

    attachDom0(onInterrupt, { instance = 'xenmca-node' } = {}) {
      const call = stub.AttachDom0({ instance }, metadata());
      let cancelled = false;
      const ended = new Promise((resolve) => {
        call.on('data', (interrupt) => onInterrupt(interrupt));
        // 'status' comes exactly once, after 'error' when the call failed;
        // the error event still needs a listener or it would be thrown.
        let failure = null;
        call.on('error', (error) => {
          failure = error;
        });
        call.on('status', (status) => {
          const clean =
            status.code === grpc.status.OK || (cancelled && status.code === grpc.status.CANCELLED);
          resolve(clean ? { ok: true } : { ok: false, error: failure ?? status });
        });
      });
      return {
        cancel() {
          cancelled = true;
          call.cancel();
        },
        ended,
      };
    },

    waitForReady: (timeoutMs) =>
      new Promise((resolve, reject) => {
        stub.waitForReady(Date.now() + timeoutMs, (err) => (err ? reject(err) : resolve()));
      }),

    close: () => stub.close(),
  };
}

export { recordTypeEnum, typeLabel, severityLabel, SAL_OK, SAL_CALL_ERROR, SAL_NO_INFORMATION } from './names.js';
export { describeRpcError } from './rpc-errors.js';
