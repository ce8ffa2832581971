/**
 * UpdateUnit, Rollback and GetRollout: the API half of rolling updates. The API validates
 * everything first and writes the rollout record (and, for a template, the template's new
 * file, so instances created meanwhile start on it) in one compare-and-swap transaction; the
 * leader's rollout driver (scheduler/rollouts/driver.ts) then rolls the instances. The record
 * itself, its defaults and its progress are the rollouts' (scheduler/rollouts/record.ts).
 */
import type { Rollout } from '../../proto/flotilla/v1/records.js';
import type {
  GetRolloutRequest,
  RollbackRequest,
  RolloutStatus,
  UpdateUnitRequest,
} from '../../proto/flotilla/v1/units.js';
import { codecs, type CacheEntry } from '../../store/index.js';
import { excerpt, parseUnitName, UnitError, type UpdateDefaults } from '../../unit/index.js';
import {
  isUnfinished,
  rolloutStatus,
  startedRollout,
  UPDATE_DEFAULTS,
  type RolloutOptions,
} from '../rollouts/record.js';
import { isTemplateName, reversed, ROLLOUT_MAX_PARALLELISM } from '../rollouts/step.js';
import { recordBytes } from './quota.js';
import { ApiError, invalidUnits } from '../gate/errors.js';
import { REGISTRY_DEFAULTS } from '../../registry/skopeo.js';
import { pinImages } from './pin-images.js';
import type { Rights } from '../gate/rights.js';
import { checkFiles } from './unit-rights.js';
import { fresh, type ApiCluster } from './reads.js';
import { applyWrites, queueUnitPut, retryOnConflict, validateFiles } from './unit-writes.js';
import { queueServiceWrites, storedDeclaration } from './service-records.js';

const MAX_SPAN_MS = 3_600_000n;
const FAILURE_ACTIONS = ['pause', 'rollback'];

/** The unit a rollout is about: a template or a plain unit, never an instance. */
function rolloutTarget(name: string): string {
  let parsed;
  try {
    parsed = parseUnitName(name);
  } catch (err) {
    if (!(err instanceof UnitError)) throw err;
    throw invalidUnits([err]);
  }
  if (parsed.isInstance) {
    throw new ApiError(
      'invalid-argument',
      `${name} is an instance: update or roll back its template ${parsed.template}, which rolls every instance`,
    );
  }
  return name;
}

function span(name: string, ms: bigint, fallback: number): bigint {
  if (ms < 0n) return BigInt(fallback);
  if (ms > MAX_SPAN_MS) throw new ApiError('invalid-argument', `${name} ${ms} ms: at most 1h`);
  return ms;
}

/**
 * The request's healthy deadline (0: none given), else the file's, else 5 min. A request's
 * must be more than 0 and at most 1h, like the file's.
 */
function healthyDeadline(ms: bigint, file: UpdateDefaults): bigint {
  if (ms === 0n) return BigInt(file.healthyDeadlineMs ?? UPDATE_DEFAULTS.healthyDeadlineMs);
  if (ms < 0n || ms > MAX_SPAN_MS) {
    throw new ApiError(
      'invalid-argument',
      `healthy deadline ${ms} ms: expected more than 0 and at most 1h`,
    );
  }
  return ms;
}

/**
 * The options of an update: the request's, else the new file's `[X-Fleet] Update*=`, else
 * {@link UPDATE_DEFAULTS}. INVALID_ARGUMENT for a bad one.
 */
function updateOptions(req: UpdateUnitRequest, file: UpdateDefaults): RolloutOptions {
  const p =
    req.parallelism !== 0 ? req.parallelism : (file.parallelism ?? UPDATE_DEFAULTS.parallelism);
  if (p < 1 || p > ROLLOUT_MAX_PARALLELISM) {
    throw new ApiError(
      'invalid-argument',
      `parallelism ${req.parallelism}: expected 1 to ${ROLLOUT_MAX_PARALLELISM}`,
    );
  }
  const failureAction =
    req.failureAction !== ''
      ? req.failureAction
      : (file.failureAction ?? UPDATE_DEFAULTS.failureAction);
  if (!FAILURE_ACTIONS.includes(failureAction)) {
    throw new ApiError(
      'invalid-argument',
      `failure action "${excerpt(failureAction)}": use ${FAILURE_ACTIONS.join(' or ')}`,
    );
  }
  const order = req.order === '' ? UPDATE_DEFAULTS.order : req.order;
  if (order === 'start-first') {
    throw new ApiError(
      'invalid-argument',
      'order start-first is not supported: an instance is one named unit on one machine, so it is stopped before its new version starts; use stop-first and a parallelism that leaves enough instances up',
    );
  }
  if (order !== 'stop-first') {
    throw new ApiError('invalid-argument', `order "${excerpt(order)}": use stop-first`);
  }
  return {
    parallelism: p,
    delayMs: span('delay', req.delayMs, file.delayMs ?? UPDATE_DEFAULTS.delayMs),
    monitorMs: span('monitor', req.monitorMs, file.monitorMs ?? UPDATE_DEFAULTS.monitorMs),
    healthyDeadlineMs: healthyDeadline(req.healthyDeadlineMs, file),
    failureAction,
    order,
  };
}

/** UpdateUnit; see units.proto. */
export async function updateUnit(
  cluster: ApiCluster,
  req: UpdateUnitRequest,
  rights?: Rights,
): Promise<RolloutStatus> {
  if (req.file === undefined) throw new ApiError('invalid-argument', 'no unit file given');
  const name = rolloutTarget(req.file.name);
  const valid = validateFiles([req.file]);
  checkFiles(rights, valid, 'update');
  // The same validation and pinning as submit, before anything is read or written: a tag the
  // registry lacks is refused here, not discovered by the agents after the old version stopped.
  const [file] = await pinImages(valid, cluster.registry ?? REGISTRY_DEFAULTS);
  if (file === undefined) throw new ApiError('invalid-argument', 'no unit file given');
  const options = updateOptions(req, file.unit.fleet.update ?? {});
  return retryOnConflict(cluster, async () => {
    await fresh(cluster);
    const { mirror } = cluster;
    const current = mirror.units.get(name);
    if (current === undefined) {
      throw new ApiError(
        'not-found',
        `${name} is not submitted: submit it first (flotctl submit), then update it`,
      );
    }
    const running = mirror.rollouts.get(name);
    if (running !== undefined && isUnfinished(running.value) && !req.force) {
      const s = rolloutStatus(mirror, running.value);
      throw new ApiError(
        'failed-precondition',
        `a rollout of ${name} to ${running.value.toHash.slice(0, 12)} is ${running.value.phase} (${s.updated}/${s.total} updated): wait for it (flotctl rollout status ${name}), roll it back (flotctl rollback ${name}), or supersede it with --force`,
      );
    }
    const to = { hash: file.unit.hash, file: file.contents };
    const rollout = startedRollout(name, current.value, to, options, BigInt(Date.now()));
    const isTemplate = file.unit.name.isTemplate;
    const total = rolloutStatus(mirror, rollout).total;
    const record = { ...rollout, total };
    // The leader rewrites every instance with the new file: the guard counts them all now.
    await cluster.quota.check((total + 2) * recordBytes({ name, file: file.contents }));
    const revision = await applyWrites(
      cluster,
      (b) => {
        // The service record follows the new file now, for a template and a plain unit alike
        // (the rollout owns the file from here); refusals write nothing.
        if (current.value.hash !== file.unit.hash) {
          const before = storedDeclaration(current.value);
          queueServiceWrites(cluster, b, [{ unit: name, before, after: file.unit.xService }]);
        }
        // A plain unit's record is its one instance: the leader rewrites it, gated like one.
        if (isTemplate && current.value.hash !== file.unit.hash) {
          queueUnitPut(
            cluster,
            b,
            { ...current.value, file: file.contents, hash: file.unit.hash },
            current,
          );
        }
        putRollout(cluster, b, record, running);
      },
      mirror.revision,
    );
    return { ...rolloutStatus(mirror, mirror.rollouts.get(name)?.value ?? record), revision };
  });
}

/** Rollback; see units.proto. */
export async function rollback(cluster: ApiCluster, req: RollbackRequest): Promise<RolloutStatus> {
  const name = rolloutTarget(req.name);
  return retryOnConflict(cluster, async () => {
    await fresh(cluster);
    const { mirror } = cluster;
    const entry = mirror.rollouts.get(name);
    if (entry === undefined) {
      throw new ApiError(
        'not-found',
        `${name} has no rollout to roll back: flotctl update makes one (a plain submit --replace keeps no previous file)`,
      );
    }
    const template = mirror.units.get(name);
    if (template === undefined) throw new ApiError('not-found', `${name} is not submitted`);
    const next = reversed(entry.value, Date.now(), "rolling back at an operator's request");
    const record = { ...next, failed: [], startedAt: BigInt(Date.now()) };
    const revision = await applyWrites(
      cluster,
      (b) => {
        if (template.value.hash !== record.toHash) {
          const before = storedDeclaration(template.value);
          const after = storedDeclaration({ ...template.value, file: record.toFile });
          queueServiceWrites(cluster, b, [{ unit: name, before, after }]);
        }
        if (isTemplateName(name) && template.value.hash !== record.toHash) {
          queueUnitPut(
            cluster,
            b,
            { ...template.value, file: record.toFile, hash: record.toHash },
            template,
          );
        }
        putRollout(cluster, b, record, entry);
      },
      mirror.revision,
    );
    return { ...rolloutStatus(mirror, mirror.rollouts.get(name)?.value ?? record), revision };
  });
}

/** GetRollout; see units.proto. */
export async function getRollout(
  cluster: ApiCluster,
  req: GetRolloutRequest,
): Promise<RolloutStatus> {
  const name = rolloutTarget(req.name);
  await fresh(cluster);
  const entry = cluster.mirror.rollouts.get(name);
  if (entry === undefined) {
    const known = cluster.mirror.units.has(name);
    throw new ApiError(
      'not-found',
      known ? `${name} has had no rollout (flotctl update starts one)` : `${name} is not submitted`,
    );
  }
  return rolloutStatus(cluster.mirror, entry.value);
}

function putRollout(
  cluster: ApiCluster,
  b: Parameters<Parameters<typeof applyWrites>[1]>[0],
  record: Rollout,
  current: CacheEntry<Rollout> | undefined,
): void {
  const key = cluster.store.keys.rollout(record.unit);
  const json = codecs.rollout.encode(record);
  if (current === undefined) b.putIfAbsent(key, json);
  else b.putIfModRevision(key, json, current.modRevision);
}
