// Loads the repository's .proto files at run time (no generated code).
//
// One set of loader options for the whole client, so every message looks the
// same wherever it is used:
//   keepCase: true   fields keep their proto names (record_id, sal_status),
//                    the same spelling as the protos and dom0's log columns
//   longs: String    uint64/int64 (record ids, counters) as decimal strings
//   enums: String    enum values by name ("RECORD_TYPE_CMC")
//   bytes: String    bytes as base64 (raw SAL records, OEM data)
//   defaults: true   absent scalars read as their zero value
//   oneofs: true     a section's `body` names its set member

import path from 'node:path';
import { fileURLToPath } from 'node:url';

import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';

/** The protos root of the repository: clients/node/src -> protos. */
export const DEFAULT_PROTOS_ROOT = path.resolve(
  path.dirname(fileURLToPath(import.meta.url)),
  '..',
  '..',
  '..',
  'protos',
);

/** The .proto file that defines HypervisorService, relative to the protos root. */
export const HYPERVISOR_PROTO = 'xenmca/hypervisor/v1/hypervisor_service.proto';

/** Options handed to @grpc/proto-loader. */
export const LOADER_OPTIONS = Object.freeze({
  keepCase: true,
  longs: String,
  enums: String,
  bytes: String,
  defaults: true,
  oneofs: true,
});

const cache = new Map();

/**
 * The protos root to use: the argument, else $XENMCA_PROTOS, else the repository's.
 * @param {string} [root]
 * @returns {string}
 */
export function protosRoot(root) {
  return path.resolve(root || process.env.XENMCA_PROTOS || DEFAULT_PROTOS_ROOT);
}

/**
 * The gRPC package object of xenmca.hypervisor.v1 (loaded once per root).
 * @param {string} [root] protos root (see protosRoot)
 * @returns {any} the loaded `xenmca` namespace
 */
export function loadXenmca(root) {
  const resolved = protosRoot(root);
  let loaded = cache.get(resolved);
  if (!loaded) {
    let definition;
    try {
      definition = protoLoader.loadSync(HYPERVISOR_PROTO, {
        ...LOADER_OPTIONS,
        includeDirs: [resolved],
      });
    } catch (err) {
      throw new Error(`cannot load ${HYPERVISOR_PROTO} from ${resolved}: ${err.message}`);
    }
    loaded = grpc.loadPackageDefinition(definition).xenmca;
    cache.set(resolved, loaded);
  }
  return loaded;
}
