/**
 * flotctl's check of unit files against the API's size limits (unit/limits.ts) before anything
 * is sent: the API would refuse them anyway, but only after the upload, and a request past
 * what the API reads at all would get grpc-js's words instead of a line naming the file.
 */
import type { UnitFile } from '../proto/flotilla/v1/units.js';
// Not the unit index, which loads the whole parser: see client.ts.
import { excerpt } from '../unit/excerpt.js';
import {
  byteLength,
  fileTooLargeMessage,
  SUBMIT_MAX_BYTES,
  submitTooLargeMessage,
  UNIT_FILE_MAX_BYTES,
} from '../unit/limits.js';
import { UNIT_NAME_MAX } from '../unit/names.js';
import { CliError } from './errors.js';

/**
 * Refuses, with CliError `too-large`, files over UNIT_FILE_MAX_BYTES (one line per file,
 * naming it) and then requests over SUBMIT_MAX_BYTES. `requests` are the files as they will be
 * sent, one array per request; all are checked before the first is sent.
 */
export function checkUnitFileSizes(requests: readonly (readonly UnitFile[])[]): void {
  const problems: string[] = [];
  for (const files of requests) {
    for (const f of files) {
      const bytes = byteLength(f.contents);
      if (bytes > UNIT_FILE_MAX_BYTES) {
        problems.push(`${excerpt(f.name, UNIT_NAME_MAX)}: ${fileTooLargeMessage(bytes)}`);
      }
    }
  }
  if (problems.length > 0) throw new CliError('too-large', problems.join('\n'));
  for (const files of requests) {
    const bytes = files.reduce((sum, f) => sum + byteLength(f.contents), 0);
    if (bytes > SUBMIT_MAX_BYTES) {
      throw new CliError('too-large', submitTooLargeMessage(files.length, bytes));
    }
  }
}
