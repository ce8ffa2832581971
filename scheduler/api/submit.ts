/**
 * SubmitUnits: validate every file, then write all of them in one transaction, or nothing.
 *
 * "Identical" follows fleet: two files are the same unit when their content hashes match
 * (comments and whitespace do not count). Resubmitting the same unit is a no-op; a different
 * unit under an existing name is ALREADY_EXISTS unless `replace` is set.
 *
 * A file under a running or paused rollout (its own or its template's) is not replaced: that
 * is FAILED_PRECONDITION naming the rollout (`flotctl update --force` supersedes one).
 *
 * Instances submitted loaded or launched pass admission (admission.ts) as a start does, and
 * every submit that writes passes the quota guard (quota.ts), before anything is written.
 */
import type { Unit } from '../../proto/flotilla/v1/records.js';
import type { SubmitUnitsRequest, SubmitUnitsResponse } from '../../proto/flotilla/v1/units.js';
import type { Versioned } from '../../store/index.js';
import type { ApiCluster } from './reads.js';
import type { UnitStateName } from '../../unit/index.js';
import { REGISTRY_DEFAULTS } from '../../registry/skopeo.js';
import { ApiError } from '../gate/errors.js';
import { isUnfinished, rolloutStatus } from '../rollouts/record.js';
import { admitStart, type ActivatedUnit } from './admission.js';
import { recordBytes } from './quota.js';
import { pinImages } from './pin-images.js';
import type { Rights } from '../gate/rights.js';
import { checkFiles } from './unit-rights.js';
import {
  queueServiceWrites,
  storedDeclaration,
  type DeclarationChange,
} from './service-records.js';
import {
  applyWrites,
  checkTxnSize,
  parseDesiredState,
  queueUnitPut,
  readUnits,
  retryOnConflict,
  validateFiles,
  type ValidFile,
} from './unit-writes.js';

/** What submitting one file does to its record. */
type Decision =
  | { readonly kind: 'created' | 'updated'; readonly record: Unit }
  | { readonly kind: 'unchanged' }
  | { readonly kind: 'exists' };

/** SubmitUnits; see units.proto. Validates everything before reading or writing anything. */
export async function submitUnits(
  cluster: ApiCluster,
  req: SubmitUnitsRequest,
  rights?: Rights,
): Promise<SubmitUnitsResponse> {
  if (req.files.length === 0) throw new ApiError('invalid-argument', 'no unit files given');
  const valid = validateFiles(req.files);
  // By role before any registry is contacted: a refused file costs no network call.
  checkFiles(rights, valid, 'submit');
  const files = await pinImages(valid, cluster.registry ?? REGISTRY_DEFAULTS);
  const desired = req.desiredState === '' ? undefined : parseDesiredState(req.desiredState);
  if (desired !== undefined && desired !== 'inactive') refuseTemplates(files, desired);
  checkTxnSize(files.length, 'unit files');
  const names = files.map((f) => f.name);

  return retryOnConflict(cluster, async () => {
    const { units, revision } = await readUnits(cluster, names);
    const decisions = files.map((f) => decide(f, units.get(f.name), req.replace, desired));
    const clashes = files.filter((_f, i) => decisions[i]?.kind === 'exists').map((f) => f.name);
    if (clashes.length > 0) {
      throw new ApiError(
        'already-exists',
        `${clashes.join(', ')}: a different unit of that name exists (set replace to overwrite)`,
      );
    }
    refuseUnderRollout(cluster, files, decisions, units);
    await admit(cluster, files, decisions, units, desired, req.allowPending);
    const response: SubmitUnitsResponse = { created: [], updated: [], unchanged: [], revision };
    const declarations = declarationChanges(files, decisions, units);
    const written = await applyWrites(
      cluster,
      (batch) => {
        // First: its refusals (a published port taken, Publish= disagreeing) write nothing.
        queueServiceWrites(cluster, batch, declarations);
        decisions.forEach((d, i) => {
          const name = names[i] ?? '';
          if (d.kind === 'created' || d.kind === 'updated') {
            queueUnitPut(cluster, batch, d.record, units.get(name));
            response[d.kind].push(name);
          } else if (d.kind === 'unchanged') {
            response.unchanged.push(name);
          }
        });
      },
      revision,
    );
    return { ...response, revision: written };
  });
}

/**
 * What each written file declares ([X-Service]) now and declared before. The same hash is
 * the same content, so only a replaced file's old record is parsed.
 */
function declarationChanges(
  files: readonly ValidFile[],
  decisions: readonly Decision[],
  units: ReadonlyMap<string, Versioned<Unit>>,
): DeclarationChange[] {
  const out: DeclarationChange[] = [];
  files.forEach((f, i) => {
    const d = decisions[i];
    if (d === undefined || (d.kind !== 'created' && d.kind !== 'updated')) return;
    const old = units.get(f.name)?.value;
    const after = f.unit.xService;
    const before =
      old === undefined ? undefined : old.hash === d.record.hash ? after : storedDeclaration(old);
    out.push({ unit: f.name, before, after });
  });
  return out;
}

/**
 * Admission of the instances this submit loads or starts (created, or set from inactive), and
 * the quota guard for everything it writes. Throws the refusal; writes nothing.
 */
async function admit(
  cluster: ApiCluster,
  files: readonly ValidFile[],
  decisions: readonly Decision[],
  units: ReadonlyMap<string, Versioned<Unit>>,
  desired: UnitStateName | undefined,
  allowPending: boolean,
): Promise<void> {
  const activated: ActivatedUnit[] = [];
  const templates = new Map<string, Unit>();
  let bytes = 0;
  files.forEach((f, i) => {
    const d = decisions[i];
    if (d === undefined || (d.kind !== 'created' && d.kind !== 'updated')) return;
    bytes += recordBytes(d.record);
    if (f.unit.name.isTemplate) templates.set(f.name, d.record);
    const current = units.get(f.name)?.value.desiredState;
    const activates = desired !== undefined && desired !== 'inactive';
    if (activates && !f.unit.name.isTemplate && (current === undefined || current === 'inactive')) {
      activated.push({ name: f.unit.name, record: d.record, created: current === undefined });
    }
  });
  if (activated.length > 0) await admitStart(cluster, activated, allowPending, templates);
  if (bytes > 0) await cluster.quota.check(bytes);
}

/**
 * A file replaced while a rollout of it (or of its template) is running or paused is refused,
 * naming the rollout: the rollout owns the file until it ends, and a replace under it would
 * either be undone by a rollback or make the rollout fail on instances "changed by someone
 * else". `flotctl update --force` is how a new file supersedes a rollout. O(files).
 */
function refuseUnderRollout(
  cluster: ApiCluster,
  files: readonly ValidFile[],
  decisions: readonly Decision[],
  units: ReadonlyMap<string, Versioned<Unit>>,
): void {
  files.forEach((f, i) => {
    const d = decisions[i];
    if (d?.kind !== 'updated' || d.record.hash === units.get(f.name)?.value.hash) return;
    const owners = f.unit.name.isInstance ? [f.name, f.unit.name.template] : [f.name];
    for (const owner of owners) {
      const running = cluster.mirror.rollouts.get(owner)?.value;
      if (running === undefined || !isUnfinished(running)) continue;
      const s = rolloutStatus(cluster.mirror, running);
      throw new ApiError(
        'failed-precondition',
        `${f.name}: a rollout of ${owner} to ${running.toHash.slice(0, 12)} is ${running.phase} (${s.updated}/${s.total} updated), and replacing the file under it would undo or break it: wait for it (flotctl rollout status ${owner}), roll it back (flotctl rollback ${owner}), or supersede it with this file (flotctl update --force)`,
      );
    }
  });
}

/** A template only describes instances: it can be submitted, never loaded or started. */
function refuseTemplates(files: readonly ValidFile[], desired: UnitStateName): void {
  const templates = files.filter((f) => f.unit.name.isTemplate).map((f) => f.name);
  const [first] = templates;
  if (first === undefined) return;
  const example = first.replace('@.', '@1.');
  throw new ApiError(
    'failed-precondition',
    `${templates.join(', ')}: a template cannot be ${desired}; start its instances instead (e.g. ${example})`,
  );
}

function decide(
  file: ValidFile,
  current: Versioned<Unit> | undefined,
  replace: boolean,
  desired: UnitStateName | undefined,
): Decision {
  const hash = file.unit.hash;
  if (current === undefined) {
    const record = {
      name: file.name,
      file: file.contents,
      hash,
      desiredState: desired ?? 'inactive',
    };
    return { kind: 'created', record };
  }
  const old = current.value;
  const same = old.hash === hash;
  if (!same && !replace) return { kind: 'exists' };
  const record: Unit = {
    name: file.name,
    file: replace ? file.contents : old.file,
    hash,
    desiredState: desired ?? old.desiredState,
  };
  const unchanged =
    record.file === old.file &&
    record.hash === old.hash &&
    record.desiredState === old.desiredState;
  return unchanged ? { kind: 'unchanged' } : { kind: 'updated', record };
}
