/**
 * Narrowing what a caller is shown of other units, as listings and watches are narrowed:
 * placement reasons and summaries (`3 conflict with db.service`) name units the planner
 * weighed, which may be units the caller may not read. Those names read `another unit`, so a
 * reason still says why, without telling a viewer of web@* that db.service exists or where.
 *
 * @example
 *   narrowText('0/3 machines: 3 conflict with db.service', (n) => n.startsWith('web@'));
 *   // '0/3 machines: 3 conflict with another unit'
 */
import type { Unscheduled } from '../../proto/flotilla/v1/records.js';
import { UNIT_TYPES } from '../../unit/index.js';
import type { Rights } from './rights.js';

const UNIT_NAME = new RegExp(`[A-Za-z0-9:_.@-]+\\.(?:${UNIT_TYPES.join('|')})\\b`, 'g');

/** Whether the caller may read unit `name`; without rights (no policy), every unit. */
export function readable(rights: Rights | undefined): (name: string) => boolean {
  return rights === undefined ? () => true : (name) => rights.may('read', name);
}

/** `text` with every unit name `canSee` refuses replaced by `another unit`. */
export function narrowText(text: string, canSee: (name: string) => boolean): string {
  return text.replace(UNIT_NAME, (name) => (canSee(name) ? name : 'another unit'));
}

/** An unscheduled record with its reasons and summary narrowed by `canSee`. */
export function narrowUnscheduled(u: Unscheduled, canSee: (name: string) => boolean): Unscheduled {
  return {
    ...u,
    summary: narrowText(u.summary, canSee),
    reasons: u.reasons.map((r) => ({ ...r, reason: narrowText(r.reason, canSee) })),
  };
}
