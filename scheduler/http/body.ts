/**
 * Request bodies checked before they become proto requests: ts-proto's `fromJSON` turns a
 * wrong type into a default (`"count": "six"` into NaN, `"names": "a"` into []), which would
 * change something other than what was asked. Here a field of the wrong type, or one the
 * request does not know, is 400 naming it, and nothing is written.
 */
import { HttpError } from './errors.js';

/** What a body field must be. */
export type FieldType = 'string' | 'boolean' | 'int' | 'strings' | 'files' | 'file';

/** `body` as an object whose fields have the given types (absent fields are fine). */
export function checkBody(
  body: unknown,
  fields: Readonly<Record<string, FieldType>>,
): Record<string, unknown> {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) {
    throw new HttpError(400, 'INVALID_ARGUMENT', 'the body must be a JSON object');
  }
  const o = body as Record<string, unknown>;
  for (const [key, value] of Object.entries(o)) {
    const type = fields[key];
    if (type === undefined) {
      const known = Object.keys(fields);
      throw new HttpError(
        400,
        'INVALID_ARGUMENT',
        `unknown field "${key.slice(0, 100)}"; ${known.length === 0 ? 'this request takes none' : `expected ${known.join(', ')}`}`,
      );
    }
    if (!fits(type, value)) {
      throw new HttpError(400, 'INVALID_ARGUMENT', `field "${key}": expected ${WORDS[type]}`);
    }
  }
  return o;
}

const WORDS: Readonly<Record<FieldType, string>> = {
  string: 'a string',
  boolean: 'true or false',
  int: 'a whole number',
  strings: 'a list of strings',
  files: 'a list of {"name": ..., "contents": ...}',
  file: 'an object {"name": ..., "contents": ...}',
};

function fits(type: FieldType, v: unknown): boolean {
  switch (type) {
    case 'string':
      return typeof v === 'string';
    case 'boolean':
      return typeof v === 'boolean';
    case 'int':
      return (
        (typeof v === 'number' && Number.isSafeInteger(v)) ||
        (typeof v === 'string' && /^-?\d{1,18}$/.test(v))
      );
    case 'strings':
      return Array.isArray(v) && v.every((s) => typeof s === 'string');
    case 'files':
      return Array.isArray(v) && v.every(isFile);
    case 'file':
      return isFile(v);
  }
}

function isFile(v: unknown): boolean {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return false;
  const f = v as Record<string, unknown>;
  return (
    typeof f['name'] === 'string' &&
    typeof f['contents'] === 'string' &&
    Object.keys(f).every((k) => k === 'name' || k === 'contents')
  );
}
