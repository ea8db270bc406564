// Record types, severities and SAL statuses: the proto enum names and the
// short spellings the xenmca tools print (CMC, corrected).

/** SAL status values (Linux include/asm-ia64/sal.h, plus the coordinator's -3). */
export const SAL_OK = 0;
/** The owning pCPU could not be reached; the coordinator keeps the entry. */
export const SAL_CALL_ERROR = -3;
/** No information available (nothing queued, or the caller is not dom0). */
export const SAL_NO_INFORMATION = -5;

export const RECORD_TYPES = Object.freeze(['MCA', 'INIT', 'CMC', 'CPE']);

/**
 * The RecordType enum name for "cmc", "CMC", "RECORD_TYPE_CMC" or the enum number 3.
 * @param {string|number} type
 * @returns {string} e.g. "RECORD_TYPE_CMC"
 */
export function recordTypeEnum(type) {
  if (typeof type === 'number' && Number.isInteger(type) && type >= 1 && type <= RECORD_TYPES.length) {
    return `RECORD_TYPE_${RECORD_TYPES[type - 1]}`;
  }
  if (typeof type === 'string') {
    const short = type.toUpperCase().replace(/^RECORD_TYPE_/, '');
    if (RECORD_TYPES.includes(short)) return `RECORD_TYPE_${short}`;
  }
  throw new TypeError(`unknown record type ${JSON.stringify(type)} (choose from mca, init, cmc, cpe)`);
}

/**
 * "CMC" for "RECORD_TYPE_CMC" (unknown names pass through).
 * @param {string} name
 */
export function typeLabel(name) {
  return String(name).replace(/^RECORD_TYPE_/, '');
}

/**
 * "corrected" for "SEVERITY_CORRECTED" (unknown names pass through).
 * @param {string} name
 */
export function severityLabel(name) {
  return String(name).replace(/^SEVERITY_/, '').toLowerCase();
}
