// An ErrorRecord as one JSON line of the Node dom0's log.
//
// The shape follows dom0's SQLite log (xenmca log export): type "CMC",
// severity "corrected", created_at in ISO 8601 UTC, sections with proto field
// names and only their set body member. uint64 values stay decimal strings.

import { severityLabel, typeLabel } from './names.js';

/**
 * ISO 8601 UTC with nanoseconds for a google.protobuf.Timestamp, or null.
 * @param {{seconds: string|number, nanos: number} | null | undefined} ts
 */
export function timestampIso(ts) {
  if (!ts) return null;
  const seconds = Number(ts.seconds);
  const nanos = Number(ts.nanos ?? 0);
  if (!Number.isFinite(seconds) || (seconds === 0 && nanos === 0)) return null;
  const whole = new Date(seconds * 1000).toISOString(); // ....ss.000Z
  return `${whole.slice(0, -5)}.${String(nanos).padStart(9, '0')}Z`;
}

/**
 * Milliseconds for a google.protobuf.Duration, or null when unset.
 * @param {{seconds: string|number, nanos: number} | null | undefined} d
 */
export function durationMs(d) {
  if (!d) return null;
  return Number(d.seconds) * 1000 + Number(d.nanos ?? 0) / 1e6;
}

/**
 * A section with its error_recovery_info and its one set body member.
 * @param {any} section as decoded (with the `body` oneof name)
 */
export function sectionObject(section) {
  const out = { error_recovery_info: section.error_recovery_info };
  if (section.body) out[section.body] = section[section.body];
  return out;
}

/**
 * The log line for a record GetStateInfo returned.
 * @param {any} record ErrorRecord as decoded
 * @param {{byIpi?: boolean, raw?: boolean}} [options] by_ipi from the reply; raw to include the base64 bytes
 */
export function recordLine(record, { byIpi, raw = false } = {}) {
  const line = {
    pcpu: record.pcpu,
    record_id: String(record.record_id),
    type: typeLabel(record.type),
    severity: severityLabel(record.severity),
    created_at: timestampIso(record.created_at),
    overflow: Boolean(record.overflow),
    sections: (record.sections ?? []).map(sectionObject),
  };
  if (byIpi !== undefined) line.by_ipi = Boolean(byIpi);
  if (raw) line.raw = record.raw;
  return line;
}
