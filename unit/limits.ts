/**
 * How large unit files may be. Both limits follow from etcd: a unit's record holds its file,
 * and one submit is one etcd transaction, which etcd refuses above its request limit
 * (`--max-request-bytes`, 1.5 MiB by default). They live here, in the language, because
 * flotctl checks them before sending and the API checks them before parsing, and flotctl must
 * not import the server to know them.
 */
import { UnitError } from './errors.js';
import { formatBytes } from './excerpt.js';

/**
 * The largest unit file, in UTF-8 bytes: 256 KiB. Real unit files are a few KiB; this leaves
 * room for long `Environment=` lines while keeping four files within one submit, and one
 * instance record (which carries its template's file) well within an etcd request.
 */
export const UNIT_FILE_MAX_BYTES = 256 * 1024;

/**
 * The most unit-file bytes one submit (or plan) may carry, all files together: 1 MiB. The
 * transaction also holds each file's key, name and hash, and JSON escaping grows some
 * characters, so this stays a third below etcd's default 1.5 MiB request limit.
 */
export const SUBMIT_MAX_BYTES = 1024 * 1024;

/** UTF-8 bytes of `text`, the unit the limits are in. */
export function byteLength(text: string): number {
  return Buffer.byteLength(text, 'utf8');
}

/** The sentence for a file over {@link UNIT_FILE_MAX_BYTES}. */
export function fileTooLargeMessage(bytes: number): string {
  return `the file is ${formatBytes(bytes)} (${bytes} bytes); a unit file may be at most ${formatBytes(UNIT_FILE_MAX_BYTES)}`;
}

/** `UnitError('too-large')` when `text` is over {@link UNIT_FILE_MAX_BYTES}, else undefined. */
export function checkUnitFileSize(text: string): UnitError | undefined {
  // Cheap bound first: a string of n UTF-16 units is at most 3n UTF-8 bytes.
  if (text.length * 3 <= UNIT_FILE_MAX_BYTES) return undefined;
  const bytes = byteLength(text);
  if (bytes <= UNIT_FILE_MAX_BYTES) return undefined;
  return new UnitError('too-large', fileTooLargeMessage(bytes));
}

/**
 * The sentence for `files` unit files totalling `bytes`, over {@link SUBMIT_MAX_BYTES}, in one
 * request: what the limit is and what to do.
 */
export function submitTooLargeMessage(files: number, bytes: number): string {
  return `${files} unit file${files === 1 ? '' : 's'} of ${formatBytes(bytes)} (${bytes} bytes) in one request: at most ${formatBytes(SUBMIT_MAX_BYTES)} of unit files fit in one request (a submit is one etcd transaction); send them in smaller groups`;
}
