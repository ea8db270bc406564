// One-line descriptions of failed calls, with the ErrorInfo reason the xenmca
// servers put in google.rpc.Status (trailer grpc-status-details-bin).
//
// The two messages are tiny, so they are read with a minimal protobuf wire
// decoder rather than by loading googleapis' protos:
//   google.rpc.Status    { int32 code = 1; string message = 2; repeated Any details = 3; }
//   google.protobuf.Any  { string type_url = 1; bytes value = 2; }
//   google.rpc.ErrorInfo { string reason = 1; string domain = 2; map<string,string> metadata = 3; }

import * as grpc from '@grpc/grpc-js';

const ERROR_INFO_TYPE = 'type.googleapis.com/google.rpc.ErrorInfo';

/**
 * The fields of one protobuf message: field number -> list of values
 * (varints as numbers, length-delimited fields as Buffers).
 * @param {Buffer} buf
 * @returns {Map<number, Array<number|Buffer>>}
 */
export function decodeFields(buf) {
  const fields = new Map();
  let pos = 0;
  const varint = () => {
    let value = 0;
    let scale = 1;
    for (;;) {
      if (pos >= buf.length) throw new RangeError('truncated varint');
      const byte = buf[pos++];
      value += (byte & 0x7f) * scale;
      if (byte < 0x80) return value;
      scale *= 128;
    }
  };
  while (pos < buf.length) {
    const key = varint();
    const field = Math.floor(key / 8);
    const wire = key & 7;
    let value;
    if (wire === 0) value = varint();
    else if (wire === 2) {
      const length = varint();
      if (pos + length > buf.length) throw new RangeError('truncated field');
      value = buf.subarray(pos, pos + length);
      pos += length;
    } else if (wire === 1) pos += 8;
    else if (wire === 5) pos += 4;
    else throw new RangeError(`unsupported wire type ${wire}`);
    if (value !== undefined) {
      if (!fields.has(field)) fields.set(field, []);
      fields.get(field).push(value);
    }
  }
  return fields;
}

/**
 * The ErrorInfo reason (and domain) in a serialized google.rpc.Status, if any.
 * @param {Buffer} statusBytes
 * @returns {{reason: string, domain: string} | null}
 */
export function errorInfoFromStatus(statusBytes) {
  try {
    for (const any of decodeFields(statusBytes).get(3) ?? []) {
      const anyFields = decodeFields(/** @type {Buffer} */ (any));
      const typeUrl = anyFields.get(1)?.[0]?.toString('utf8');
      if (typeUrl !== ERROR_INFO_TYPE) continue;
      const info = decodeFields(/** @type {Buffer} */ (anyFields.get(2)?.[0] ?? Buffer.alloc(0)));
      return {
        reason: info.get(1)?.[0]?.toString('utf8') ?? '',
        domain: info.get(2)?.[0]?.toString('utf8') ?? '',
      };
    }
  } catch {
    // A malformed detail is not worth failing over: describe the call without it.
  }
  return null;
}

/**
 * The ErrorInfo of a failed call, if its server sent one.
 * @param {any} err a grpc-js ServiceError
 */
export function errorInfoOf(err) {
  const values = err?.metadata?.get?.('grpc-status-details-bin') ?? [];
  for (const value of values) {
    if (Buffer.isBuffer(value)) {
      const info = errorInfoFromStatus(value);
      if (info) return info;
    }
  }
  return null;
}

/**
 * "UNAUTHENTICATED [MISSING_CREDENTIALS]: present a valid bearer token ..." for a failed call.
 * @param {any} err a grpc-js ServiceError (or any Error)
 * @returns {string}
 */
export function describeRpcError(err) {
  if (typeof err?.code !== 'number') return String(err?.message ?? err);
  const codeName = grpc.status[err.code] ?? `CODE_${err.code}`;
  const info = errorInfoOf(err);
  const reason = info?.reason ? ` [${info.reason}]` : '';
  const details = String(err.details ?? err.message ?? '')
    .replace(/\s+/g, ' ')
    .replace(/\s*Resolution note:\s*$/, '')
    .trim();
  return `${codeName}${reason}: ${details}`;
}

/** Codes that mean "this caller may not do that": retrying will not help. */
export const IDENTITY_CODES = Object.freeze([
  grpc.status.UNAUTHENTICATED,
  grpc.status.PERMISSION_DENIED,
]);
