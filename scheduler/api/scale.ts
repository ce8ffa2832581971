/**
 * Scale: make exactly `count` numbered instances of a template exist and be launched.
 *
 * Scale manages the numbered instances (`web@1.service`, `web@2.service`, ...: a positive
 * decimal without leading zeros); instances with other names (`web@canary.service`) are
 * neither counted nor touched. Growing creates the lowest free numbers; shrinking destroys the
 * highest numbers; instances that are kept but not launched are launched, so afterwards
 * `count` instances are wanted running.
 *
 * The instances a scale creates and destroys are numbers in ONE record, the template's count
 * (`instance-counts/<template>`, scale-counts.ts): scaling by N writes that record once.
 * Numbered instances with records of their own (started by hand, changed one by one, or
 * written by an earlier version) are counted alike and written one by one.
 *
 * The work is decided once from the mirror's index of the template's instances and written in
 * transactions of at most 128 records, several in flight: scaling by N costs
 * O(N), never a re-read of every instance per step. Every write is conditioned on what the
 * mirror showed (created only if absent, changed or deleted only if unchanged); a transaction
 * that loses to a concurrent writer leaves the others in place, and the scale decides the
 * rest again once the mirror has caught up. Each transaction is a valid state on the way.
 *
 * Before anything is written, a scale up passes admission (admission.ts: the template's
 * ceiling and what fits now) and the quota guard (quota.ts); a dry run stops there.
 */
import type { NumberRange, Unit } from '../../proto/flotilla/v1/records.js';
import {
  ScaleRequest as ScaleRequestMessage,
  type InstanceRange,
  type ScaleRequest,
  type ScaleResponse,
} from '../../proto/flotilla/v1/units.js';
import {
  addRanges,
  atomicTxn,
  Batch,
  chunkOps,
  codecs,
  ConflictError,
  countedIn,
  isStoreError,
  numbersOf,
  subtractRanges,
  toRanges,
  type BatchOp,
  type Versioned,
} from '../../store/index.js';
import { pool } from '../../lib/pool.js';
import { parseUnitName, UnitError, type UnitName } from '../../unit/index.js';
import { ApiError, formatUnitError } from '../gate/errors.js';
import { canonicalTemplate } from '../gate/auth.js';
import { admitScale } from './admission.js';
import type { Rights } from '../gate/rights.js';
import { checkRecords } from './unit-rights.js';
import type { BulkTicket } from './lanes.js';
import { recordBytes } from './quota.js';
import {
  fresh,
  freshOrBehind,
  MIRROR_WAIT_MS,
  RECOVERY_WAIT_MS,
  settle,
  type ApiCluster,
} from './reads.js';
import { countChange } from './scale-counts.js';
import { queueUnitPut, WRITE_ATTEMPTS } from './unit-writes.js';

const NUMBERED = /^[1-9][0-9]*$/;

/** The largest count a scale accepts. */
export const MAX_SCALE_COUNT = 1_000_000;

/** Transactions of one scale prepared at once; the lanes' window decides how many are sent. */
const SCALE_IN_FLIGHT = 16;

/** A numbered instance that exists now. */
interface Instance {
  readonly number: number;
  readonly record: Versioned<Unit>;
}

/** What one round decided and wrote, as ranges of instance numbers. */
interface Round {
  readonly started: NumberRange[];
  readonly destroyed: NumberRange[];
  readonly instances: NumberRange[];
  readonly revision: bigint;
  /** Transactions that lost to a concurrent writer: the round must be decided again. */
  readonly conflicts: number;
}

/** Scale; see units.proto and this module's comment. */
export async function scale(
  cluster: ApiCluster,
  req: ScaleRequest,
  rights?: Rights,
): Promise<ScaleResponse> {
  if (!Number.isInteger(req.count) || req.count < 0) {
    throw new ApiError('invalid-argument', `count ${req.count} is negative: give 0 or more`);
  }
  if (req.count > MAX_SCALE_COUNT) {
    throw new ApiError(
      'invalid-argument',
      `count ${req.count} is over the limit of ${MAX_SCALE_COUNT} instances per template`,
    );
  }
  const template = templateName(req.template);
  const { lanes } = cluster;
  // A scale to no more instances than exist is recovery: it never waits behind scale-ups,
  // and it is served while the mirror lags (lanes.ts). A scale up is admitted first, then
  // waits for its turn.
  const existing = cluster.mirror.instances.get(template.name)?.size ?? 0;
  const down = req.count <= existing;
  if (!down) {
    const record = cluster.mirror.units.get(template.name)?.value;
    if (record !== undefined) checkRecords(cluster, rights, [record], 'scale');
  }
  const admission = await admit(cluster, template, req, !down);
  if (req.dryRun) {
    const none: InstanceRange[] = [];
    const numbered = readTemplate(cluster, template).instances.map((i) => i.number);
    const revision = cluster.mirror.revision;
    return {
      template: template.name,
      started: none,
      destroyed: none,
      instances: toRanges(numbered),
      revision,
      warnings: [],
      admission,
    };
  }
  // Later wins: whatever scale-up of this template is queued or running stops now.
  lanes.supersede(template.name, req.count);
  if (down) {
    return {
      ...(await lanes.recovery(() => scaleTo(cluster, template, req.count, undefined))),
      admission,
    };
  }
  const ticket = await lanes.bulk(template.name);
  try {
    return { ...(await scaleTo(cluster, template, req.count, ticket)), admission };
  } finally {
    ticket.done();
  }
}

/**
 * Admission of a scale (admission.ts), then the quota guard for the records it would create;
 * throws the refusal. A scale up reads a fresh mirror (the verdict is about the cluster as it
 * is); a scale down, always admitted, does not wait for one.
 */
async function admit(cluster: ApiCluster, template: UnitName, req: ScaleRequest, up: boolean) {
  if (up) await fresh(cluster);
  const now = readTemplate(cluster, template);
  if (now.record === undefined) refuseWithoutTemplate(template, now.instances.length, req.count);
  const admission = await admitScale(cluster, {
    template,
    record: now.record?.value,
    numbered: now.instances.map((i) => ({ number: i.number, record: i.record.value })),
    total: cluster.mirror.instances.get(template.name)?.size ?? 0,
    count: req.count,
    allowPending: req.allowPending,
  });
  const created = req.count - now.instances.length;
  if (created > 0 && now.record !== undefined && !req.dryRun) {
    await cluster.quota.check(created * recordBytes(now.record.value));
  }
  return admission;
}

/**
 * The rounds of one scale. `ticket` is a scale-up's place in the bulk lane; without one the
 * scale is recovery and goes ahead from the mirror as it is when that lags etcd (with a
 * warning): every write is conditioned on the records it changes, and on the scale record.
 */
async function scaleTo(
  cluster: ApiCluster,
  template: UnitName,
  count: number,
  ticket: BulkTicket | undefined,
): Promise<ScaleResponse> {
  const catchUp = async (): Promise<string | undefined> => {
    if (ticket !== undefined) return void (await fresh(cluster));
    return (await freshOrBehind(cluster)).warning;
  };
  const warnings = new Set<string>();
  let started: NumberRange[] = [];
  let destroyed: NumberRange[] = [];
  for (let i = 1; i <= WRITE_ATTEMPTS; i++) {
    const behind = await catchUp();
    if (behind !== undefined) warnings.add(behind);
    if (ticket?.signal.aborted === true)
      throw await supersededError(cluster, template, count, ticket);
    // Folding records into the count needs their latest revisions: not from a mirror behind.
    const round = await scaleRound(cluster, template, count, ticket, behind === undefined);
    started = addRanges(started, round.started);
    destroyed = addRanges(destroyed, round.destroyed);
    if (round.conflicts === 0) {
      return {
        template: template.name,
        started: subtractRanges(started, destroyed),
        destroyed,
        instances: round.instances,
        revision: round.revision,
        warnings: [...warnings],
      };
    }
  }
  throw new ApiError(
    'aborted',
    `the instances of ${template.name} keep changing under this scale (another scale running?); try again`,
  );
}

/**
 * Decides from the mirror and writes every change; reports what took effect. The round first
 * writes the template's scale record (its lock) and decides only once the mirror shows that
 * write; each of its transactions requires the record unchanged. A scale that begins later
 * rewrites it, so the rest of this round is refused and this scale ends superseded: of two
 * concurrent scales the later one decides from everything the earlier one wrote, and the
 * template ends at its count, never between the two.
 */
async function scaleRound(
  cluster: ApiCluster,
  template: UnitName,
  count: number,
  ticket: BulkTicket | undefined,
  fold: boolean,
): Promise<Round> {
  const { store, mirror } = cluster;
  const wait = ticket === undefined ? RECOVERY_WAIT_MS : MIRROR_WAIT_MS;
  // An unknown template, or one that is gone when the count needs new instances, is refused
  // before anything is written; instances left without their template can still shrink.
  const before = readTemplate(cluster, template);
  if (before.record === undefined) refuseWithoutTemplate(template, before.instances.length, count);
  const lock = { key: store.keys.scale(template.name), modRevision: 0n };
  // The record is a ScaleRequest holding only what was asked: template and count.
  lock.modRevision = await store.putRecord(
    codecs.scale,
    lock.key,
    ScaleRequestMessage.fromPartial({ template: template.name, count }),
  );
  await settle(mirror, lock.modRevision, wait);
  const { record, instances } = readTemplate(cluster, template);
  const keep = instances.slice(0, count);
  const drop = instances.slice(count);
  const idle = keep.filter((i) => i.record.value.desiredState !== 'launched');
  const created = lowestFree(keep, count - keep.length);
  if (record === undefined && created.length > 0) {
    refuseWithoutTemplate(template, instances.length, count);
  }

  // One op per real instance, numbered so a transaction's outcome maps back to instances;
  // counted instances change together in ONE op on the count record, the first.
  const batch = new Batch();
  const numbers: number[] = [];
  const counted = countChange(cluster, template, record, {
    keep: fold ? keep : [],
    idle,
    drop,
    created,
  });
  // The count's op, and the real records it folds in, go first: one transaction holds them.
  for (const op of [...(counted.op === undefined ? [] : [counted.op]), ...counted.folds]) {
    batch.add(op);
    numbers.push(0);
  }
  for (const i of idle.filter((x) => countedIn(x.record) === undefined)) {
    queueUnitPut(cluster, batch, { ...i.record.value, desiredState: 'launched' }, i.record);
    numbers.push(i.number);
  }
  for (const n of counted.createsAll ? [] : numbersOf(created)) {
    if (record === undefined) break; // unreachable: refused just above
    const name = `${template.prefix}@${n}.${template.type}`;
    const instance = cluster.instanceRecords.record(name, record.value, 'launched');
    queueUnitPut(cluster, batch, instance, undefined);
    numbers.push(n);
  }
  for (const i of drop.filter((x) => countedIn(x.record) === undefined)) {
    batch.deleteIfModRevision(i.record.key, i.record.modRevision);
    numbers.push(-i.number);
  }
  const chunks = chunkOps(batch.ops);
  const applied: boolean[] = chunks.map(() => false);
  let revision = mirror.revision;
  let conflicts = 0;
  let superseded = false;
  await pool(chunks.length, SCALE_IN_FLIGHT, async (c) => {
    const chunk: readonly BatchOp[] = chunks[c] ?? [];
    // Bulk work lets recovery writes go first, and stops once a later scale supersedes it.
    if (ticket !== undefined) await cluster.lanes.bulkTurn();
    if (ticket?.signal.aborted === true) superseded = true;
    if (superseded) return;
    try {
      const res = await cluster.lanes.bulkWindow.run(() =>
        atomicTxn(store, (b) => chunk.forEach((op) => b.add(op)), { unchanged: lock }),
      );
      applied[c] = true;
      if (res.revision > revision) revision = res.revision;
    } catch (err) {
      if (!isStoreError(err, 'conflict')) throw err;
      if (err instanceof ConflictError && err.conflicts.some((k) => k.key === lock.key))
        superseded = true;
      else conflicts += 1;
    }
  });
  if (superseded) throw await supersededError(cluster, template, count, ticket);
  await settle(mirror, revision, wait);
  // The real records' ops that applied (0 marks the count record's op and its folds).
  const done: number[] = [];
  let offset = 0;
  chunks.forEach((chunk, c) => {
    if (applied[c] === true) done.push(...numbers.slice(offset, offset + chunk.length));
    offset += chunk.length;
  });
  let startedNow = toRanges(done.filter((n) => n > 0));
  let destroyedNow = toRanges(done.filter((n) => n < 0).map((n) => -n));
  if (counted.op !== undefined && applied[0] === true) {
    startedNow = addRanges(startedNow, counted.started);
    destroyedNow = addRanges(destroyedNow, counted.destroyed);
  }
  // What exists now: what did, less what was destroyed, and what was started (which is kept
  // or created: every number the round launches).
  const existed = toRanges(instances.map((i) => i.number));
  return {
    started: startedNow,
    destroyed: destroyedNow,
    instances: addRanges(subtractRanges(existed, destroyedNow), startedNow),
    revision,
    conflicts,
  };
}

/** ABORTED: a scale of the same template that began after this one rewrote its lock. */
async function supersededError(
  cluster: ApiCluster,
  template: UnitName,
  count: number,
  ticket: BulkTicket | undefined,
): Promise<ApiError> {
  let later = ticket?.supersededBy();
  if (later === undefined) {
    await fresh(cluster);
    later = cluster.mirror.scales.get(template.name)?.value.count;
  }
  const to = later === undefined ? '' : ` (to ${later})`;
  return new ApiError(
    'aborted',
    `another scale of ${template.name}${to} began while this scale to ${count} ran, and supersedes it: ${template.name} ends at that scale's count, not ${count}; run this scale again if ${count} is wanted`,
  );
}

/** `web`, `web@` and `web@.service` all name `web@.service`; anything else must be a template. */
export function templateName(raw: string): UnitName {
  if (raw === '') throw new ApiError('invalid-argument', 'no template given');
  const name = canonicalTemplate(raw);
  let parsed: UnitName;
  try {
    parsed = parseUnitName(name);
  } catch (err) {
    if (err instanceof UnitError) throw new ApiError('invalid-argument', formatUnitError(err));
    throw err;
  }
  if (!parsed.isTemplate) {
    throw new ApiError(
      'invalid-argument',
      `${name} is not a template: scale a template such as web@.service (or just web)`,
    );
  }
  return parsed;
}

/**
 * NOT_FOUND for a scale to `count` of a template that is not submitted: with no instances it
 * is unknown; with some (left by a destroy of the template before it refused that), only a
 * scale down is possible.
 */
function refuseWithoutTemplate(template: UnitName, instances: number, count: number): void {
  if (instances === 0) {
    throw new ApiError('not-found', `template ${template.name} is not submitted`);
  }
  if (count > instances) {
    throw new ApiError(
      'not-found',
      `template ${template.name} is not submitted: its ${instances} instance${instances === 1 ? '' : 's'} can be scaled down (to at most ${instances}) but new ones need the template: submit it first`,
    );
  }
}

/**
 * The template's record (undefined when it is not submitted) and its numbered instances (in
 * number order), from the mirror.
 */
function readTemplate(
  cluster: ApiCluster,
  template: UnitName,
): { record: Versioned<Unit> | undefined; instances: Instance[] } {
  const { mirror } = cluster;
  const record = mirror.units.get(template.name);
  const instances: Instance[] = [];
  for (const name of mirror.instances.get(template.name) ?? []) {
    const n = numberOf(name, template);
    const entry = n === undefined ? undefined : mirror.units.get(name);
    if (n !== undefined && entry !== undefined) instances.push({ number: n, record: entry });
  }
  instances.sort((a, b) => a.number - b.number);
  return { record, instances };
}

/**
 * The `want` lowest numbers that no instance of `taken` (in number order) has, as ranges:
 * O(taken) however many are wanted.
 */
function lowestFree(taken: readonly Instance[], want: number): NumberRange[] {
  const free: NumberRange[] = [];
  let next = 1;
  let left = want;
  for (const i of taken) {
    if (left <= 0) break;
    if (i.number > next) {
      const last = Math.min(i.number - 1, next + left - 1);
      free.push({ first: next, last });
      left -= last - next + 1;
    }
    next = Math.max(next, i.number + 1);
  }
  if (left > 0) free.push({ first: next, last: next + left - 1 });
  return free;
}

/** The number of a numbered instance of `template` (`web@12.service` -> 12). */
function numberOf(name: string, template: UnitName): number | undefined {
  const head = `${template.prefix}@`;
  const tail = `.${template.type}`;
  if (!name.startsWith(head) || !name.endsWith(tail)) return undefined;
  const instance = name.slice(head.length, name.length - tail.length);
  if (!NUMBERED.test(instance)) return undefined;
  const n = Number(instance);
  return Number.isSafeInteger(n) ? n : undefined;
}
