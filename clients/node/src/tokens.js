// The token book: {identity: token} as JSON (what the testbed writes) or as a
// flat YAML mapping of `identity: token` lines, like the Python tools accept.

import fs from 'node:fs';

export const TOKEN_FILE_ENV = 'XENMCA_TOKEN_FILE';

export class TokenFileError extends Error {}

/**
 * The `identity: token` lines of a flat YAML mapping, or null if the text is not one.
 * @param {string} text
 * @returns {Record<string, string> | null}
 */
function parseFlatYaml(text) {
  const book = {};
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.replace(/\s+#.*$/, '').trimEnd();
    if (!line.trim() || line.trimStart().startsWith('#') || line === '---') continue;
    const match = /^([A-Za-z0-9_.-]+)\s*:\s*(.+)$/.exec(line);
    if (!match) return null;
    book[match[1]] = match[2].trim().replace(/^(['"])(.*)\1$/, '$2');
  }
  return book;
}

/**
 * Read a token book; throws TokenFileError naming the file and the problem.
 * @param {string} path
 * @returns {Record<string, string>}
 */
export function loadTokenBook(path) {
  let text;
  try {
    text = fs.readFileSync(path, 'utf8');
  } catch (err) {
    throw new TokenFileError(`${path}: cannot read token file: ${err.code ?? err.message}`);
  }
  let book;
  try {
    book = JSON.parse(text);
  } catch {
    book = parseFlatYaml(text);
  }
  if (!book || typeof book !== 'object' || Array.isArray(book) || Object.keys(book).length === 0) {
    throw new TokenFileError(`${path}: expected a mapping of identity: token`);
  }
  for (const [identity, token] of Object.entries(book)) {
    if (typeof token !== 'string' || token.length < 8) {
      throw new TokenFileError(`${path}: entry '${identity}' must map a name to a token of 8+ characters`);
    }
  }
  return book;
}

/**
 * The token to present: the first of identities found in the book named by
 * path (or $XENMCA_TOKEN_FILE). No file at all means no token (a testbed
 * without identity checks); a file without any of the identities is an error.
 * @param {string|undefined} path
 * @param {string[]} identities in order of preference
 * @returns {string|null}
 */
export function resolveToken(path, identities) {
  const chosen = path || process.env[TOKEN_FILE_ENV];
  if (!chosen) return null;
  const book = loadTokenBook(chosen);
  for (const identity of identities) {
    if (book[identity]) return book[identity];
  }
  throw new TokenFileError(`${chosen}: no '${identities.join("' or '")}' entry`);
}
