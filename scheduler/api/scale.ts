/**
 * Scale: make exactly `count` numbered instances of a template exist and be launched.
 *
 * Scale manages the numbered instances (`web@1.service`, `web@2.service`, ...: a positive
 * decimal without leading zeros); instances with other names (`web@canary.service`) are
 * neither counted nor touched. Growing creates the lowest free numbers; shrinking destroys the
 * highest numbers; instances that are kept but not launched are launched, so afterwards
 * `count` instances are wanted running. One transaction, like every API write.
 */
import type { Unit } from '../../proto/flotilla/v1/records.js';
import type { ScaleRequest, ScaleResponse } from '../../proto/flotilla/v1/units.js';
import { codecs, type Store, type Versioned } from '../../store/index.js';
import { parseUnitName, UnitError, type UnitName } from '../../unit/index.js';
import { ApiError, formatUnitError } from './errors.js';
import { decodeKv, lastSegment, prefixEnd, rangeAt } from './reads.js';
import {
  applyWrites,
  checkTxnSize,
  instanceRecord,
  queueUnitPut,
  retryOnConflict,
} from './unit-writes.js';

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
  return retryOnConflict(async () => {
    const { record, instances, revision } = await readTemplate(store, template);
    const keep = instances.slice(0, req.count);
    const drop = instances.slice(req.count);
    const response: ScaleResponse = { started: [], destroyed: [], instances: [], revision };
    const writes: { unit: Unit; current: Versioned<Unit> | undefined }[] = [];
    for (const i of keep) {
      if (i.record.value.desiredState !== 'launched') {
        writes.push({ unit: { ...i.record.value, desiredState: 'launched' }, current: i.record });
        response.started.push(i.record.value.name);
      }
    }
    const taken = new Set(keep.map((i) => i.number));
    const created: number[] = [];
    for (let n = 1; keep.length + created.length < req.count; n++) {
      if (!taken.has(n)) created.push(n);
    }
    for (const n of created) {
      const name = `${template.prefix}@${n}.${template.type}`;
      writes.push({ unit: instanceRecord(name, record.value, 'launched'), current: undefined });
      response.started.push(name);
    }
    response.destroyed = drop.map((i) => i.record.value.name).reverse();
    checkTxnSize(writes.length + drop.length, 'instance changes');
    const written = await applyWrites(
      store,
      (batch) => {
        for (const w of writes) queueUnitPut(store, batch, w.unit, w.current);
        for (const i of drop) batch.deleteIfModRevision(i.record.key, i.record.modRevision);
      },
      revision,
    );
    const numbers = [...keep.map((i) => i.number), ...created].sort((a, b) => a - b);
    response.instances = numbers.map((n) => `${template.prefix}@${n}.${template.type}`);
    return { ...response, revision: written };
  });
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
