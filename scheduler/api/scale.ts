/**
 * Scale: make exactly `count` numbered instances of a template exist and be launched.
 *
 * Scale manages the numbered instances (`web@1.service`, `web@2.service`, ...: a positive
 * decimal without leading zeros); instances with other names (`web@canary.service`) are
 * neither counted nor touched. Growing creates the lowest free numbers; shrinking destroys the
 * highest numbers; instances that are kept but not launched are launched, so afterwards
 * `count` instances are wanted running.
 *
 * Each step is one transaction of at most {@link MAX_TXN_OPS} changes, read and written like
 * every API write; a scale that needs more (`scale web 500` from nothing) takes several steps,
 * each a valid state on the way to the count. A step that fails leaves the earlier steps in
 * place, and scaling again finishes the job.
 */
import type { Unit } from '../../proto/flotilla/v1/records.js';
import type { ScaleRequest, ScaleResponse } from '../../proto/flotilla/v1/units.js';
import { codecs, MAX_TXN_OPS, type Store, type Versioned } from '../../store/index.js';
import { parseUnitName, UnitError, type UnitName } from '../../unit/index.js';
import { ApiError, formatUnitError } from './errors.js';
import { decodeKv, lastSegment, prefixEnd, rangeAt } from './reads.js';
import { applyWrites, instanceRecord, queueUnitPut, retryOnConflict } from './unit-writes.js';

const NUMBERED = /^[1-9][0-9]*$/;

/** A numbered instance that exists now. */
interface Instance {
  readonly number: number;
  readonly record: Versioned<Unit>;
}

/** Scale; see units.proto and this module's comment. */
export async function scale(store: Store, req: ScaleRequest): Promise<ScaleResponse> {
  if (!Number.isInteger(req.count) || req.count < 0) {
    throw new ApiError('invalid-argument', `count ${req.count} is negative: give 0 or more`);
  }
  const template = templateName(req.template);
  const total: ScaleResponse = { started: [], destroyed: [], instances: [], revision: 0n };
  // Enough steps for the work the first step saw; more means another client keeps changing
  // the instances (a concurrent scale to another count), and the last word is theirs.
  let steps = Infinity;
  for (let i = 1; ; i++) {
    const step = await retryOnConflict(() => scaleStep(store, template, req.count));
    total.started.push(...step.response.started);
    total.destroyed.push(...step.response.destroyed);
    total.instances = step.response.instances;
    total.revision = step.response.revision;
    if (step.done) return total;
    if (i === 1) steps = 2 + Math.ceil((step.response.instances.length + req.count) / MAX_TXN_OPS);
    if (i >= steps) {
      throw new ApiError(
        'aborted',
        `the instances of ${template.name} keep changing under this scale (another scale running?); try again`,
      );
    }
  }
}

/** One transaction towards `count`: at most MAX_TXN_OPS changes; `done` when none remain. */
async function scaleStep(
  store: Store,
  template: UnitName,
  count: number,
): Promise<{ response: ScaleResponse; done: boolean }> {
  const { record, instances, revision } = await readTemplate(store, template);
  let budget = MAX_TXN_OPS;
  const keep = instances.slice(0, count);
  const drop = instances.slice(count).reverse().slice(0, budget);
  budget -= drop.length;
  const writes: { unit: Unit; current: Versioned<Unit> | undefined }[] = [];
  const idle = keep.filter((i) => i.record.value.desiredState !== 'launched');
  for (const i of idle.slice(0, budget)) {
    writes.push({ unit: { ...i.record.value, desiredState: 'launched' }, current: i.record });
  }
  budget -= writes.length;
  const taken = new Set(keep.map((i) => i.number));
  const created: number[] = [];
  for (let n = 1; keep.length + created.length < count && created.length < budget; n++) {
    if (!taken.has(n)) created.push(n);
  }
  for (const n of created) {
    const name = `${template.prefix}@${n}.${template.type}`;
    writes.push({ unit: instanceRecord(name, record.value, 'launched'), current: undefined });
  }
  const written = await applyWrites(
    store,
    (batch) => {
      for (const w of writes) queueUnitPut(store, batch, w.unit, w.current);
      for (const i of drop) batch.deleteIfModRevision(i.record.key, i.record.modRevision);
    },
    revision,
  );
  const dropped = new Set(drop.map((i) => i.number));
  const numbers = [...instances.map((i) => i.number).filter((n) => !dropped.has(n)), ...created];
  numbers.sort((a, b) => a - b);
  const launched = writes.length - created.length;
  const done =
    instances.length - drop.length <= count &&
    launched === idle.length &&
    keep.length + created.length === count;
  return {
    response: {
      started: writes.map((w) => w.unit.name),
      destroyed: drop.map((i) => i.record.value.name),
      instances: numbers.map((n) => `${template.prefix}@${n}.${template.type}`),
      revision: written,
    },
    done,
  };
}

/** `web`, `web@` and `web@.service` all name `web@.service`; anything else must be a template. */
export function templateName(raw: string): UnitName {
  if (raw === '') throw new ApiError('invalid-argument', 'no template given');
  let name = raw;
  if (!name.includes('@') && !name.includes('.')) name = `${name}@.service`;
  else if (name.endsWith('@')) name = `${name}.service`;
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

/** The template's record and its numbered instances (in number order), at one revision. */
async function readTemplate(
  store: Store,
  template: UnitName,
): Promise<{ record: Versioned<Unit>; instances: Instance[]; revision: bigint }> {
  const dir = store.keys.unit(`${template.prefix}@`);
  const res = await rangeAt(store, { start: dir, end: prefixEnd(dir) });
  let record: Versioned<Unit> | undefined;
  const instances: Instance[] = [];
  for (const kv of res.kvs) {
    const unit = decodeKv(codecs.unit, kv);
    const name = lastSegment(kv.key);
    if (name === template.name) {
      record = unit;
      continue;
    }
    const n = numberOf(name, template);
    if (n !== undefined) instances.push({ number: n, record: unit });
  }
  if (record === undefined) {
    throw new ApiError('not-found', `template ${template.name} is not submitted`);
  }
  instances.sort((a, b) => a.number - b.number);
  return { record, instances, revision: res.revision };
}

function numberOf(name: string, template: UnitName): number | undefined {
  let parsed: UnitName;
  try {
    parsed = parseUnitName(name);
  } catch {
    return undefined;
  }
  if (!parsed.isInstance || parsed.template !== template.name) return undefined;
  if (!NUMBERED.test(parsed.instance)) return undefined;
  const n = Number(parsed.instance);
  return Number.isSafeInteger(n) ? n : undefined;
}
