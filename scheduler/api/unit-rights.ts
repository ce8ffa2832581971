/**
 * The handlers' side of admission by role (gate/unit-contents.ts): a unit file put in force
 * is checked against the caller's rights, whether it comes with the request (submit, update,
 * plan) or is already stored (start, scale up, plan by name). Without a policy (rights
 * undefined) nothing is checked.
 */
import type { Unit } from '../../proto/flotilla/v1/records.js';
import type { Rights } from '../gate/rights.js';
import { checkUnitContents } from '../gate/unit-contents.js';
import { isInvalidUnit } from '../view/snapshot.js';
import type { ApiCluster } from './reads.js';
import type { ValidFile } from './unit-writes.js';

/** Checks request files before anything is read, pinned or written. */
export function checkFiles(
  rights: Rights | undefined,
  files: readonly ValidFile[],
  action: string,
): void {
  if (rights === undefined) return;
  for (const f of files) checkUnitContents(rights, f.unit, action);
}

/**
 * Checks stored records (an instance's own, or its template's file under the instance's
 * name). A record whose file no longer parses is left to the handler, which refuses or
 * reports it as it always did.
 */
export function checkRecords(
  cluster: ApiCluster,
  rights: Rights | undefined,
  records: Iterable<Unit>,
  action: string,
): void {
  if (rights === undefined) return;
  for (const r of records) {
    const def = cluster.definitions.get(r);
    if (!isInvalidUnit(def)) checkUnitContents(rights, def, action);
  }
}
