/**
 * Plan: a dry run of the pure planner on the cluster as the replica's mirror holds it, with the request's
 * files submitted and its units started. Writes nothing.
 *
 * The snapshot is what the leader would see, built by the leader's own `buildSnapshot`: every
 * loaded or launched unit, every placement, every live machine with the API's metadata merged
 * over its own and its drained flag (a stored unit whose file no longer parses is left out
 * with its placements, as the leader leaves it alone). The planner runs with no move budget
 * (a dry run shows where things end up, not the pacing), and a planned unit's machine is
 * where it is after the plan is applied: its new placement, or the one it keeps. A Global
 * unit lists all its machines, separated by commas.
 */
import type { PlannedUnit, PlanRequest, PlanResponse } from '../../proto/flotilla/v1/units.js';
import { applyPlan, plan } from '../planner/index.js';
import { buildSnapshot, isInvalidUnit } from '../view/snapshot.js';
import { ApiError } from '../gate/errors.js';
import { REGISTRY_DEFAULTS } from '../../registry/skopeo.js';
import type { UnitName } from '../../unit/index.js';
import { notFound } from './desired.js';
import { narrowUnscheduled, readable } from '../gate/narrow.js';
import type { Rights } from '../gate/rights.js';
import { checkFiles } from './unit-rights.js';
import { pinImages } from './pin-images.js';
import { fresh, knownMachines, readCluster, resolveMachine, type ApiCluster } from './reads.js';
import { parseNames, validateFiles, type ValidFile } from './unit-writes.js';

/** The most existing instances a template file plans by itself; beyond, name them. */
export const PLAN_MAX_INSTANCES = 1_000;

/** Plan; see units.proto and this module's comment. */
export async function planUnits(
  cluster: ApiCluster,
  req: PlanRequest,
  rights?: Rights,
): Promise<PlanResponse> {
  if (req.files.length === 0 && req.names.length === 0 && req.drainMachine === '') {
    throw new ApiError(
      'invalid-argument',
      'nothing to plan: give unit files, unit names or a machine to drain',
    );
  }
  // Checked and pinned as submit would: a plan never places what a submit would refuse.
  // By role, as a submit and a start would be: a plan never shows what they would refuse.
  const valid = validateFiles(req.files);
  checkFiles(rights, valid, 'plan');
  const files = await pinImages(valid, cluster.registry ?? REGISTRY_DEFAULTS);
  const names = req.names.length === 0 ? [] : parseNames(req.names);
  const templates = names.filter((n) => n.isTemplate).map((n) => n.name);
  if (templates.length > 0) {
    throw new ApiError(
      'failed-precondition',
      `${templates.join(', ')}: a template cannot be started; plan its instances instead`,
    );
  }

  await fresh(cluster);
  const records = readCluster(cluster.mirror);
  const units = records.units;
  const planned: string[] = [];
  // A drain to plan: the machine as the leader will see it once drained, and what it holds.
  const drained =
    req.drainMachine === '' ? '' : resolveMachine(knownMachines(cluster.mirror), req.drainMachine);
  if (drained !== '') {
    const config = records.configs.get(drained);
    records.configs.set(drained, { machine: drained, metadata: {}, ...config, drained: true });
    planned.push(...[...(cluster.mirror.placementsOn.get(drained)?.keys() ?? [])].sort());
  }
  for (const f of files) {
    units.set(f.name, {
      name: f.name,
      file: f.contents,
      hash: f.unit.hash,
      desiredState: 'launched',
    });
    if (!f.unit.name.isTemplate) planned.push(f.name);
  }
  for (const f of files.filter((x) => x.unit.name.isTemplate)) {
    for (const i of templateInstances(cluster, f, names)) {
      const template = units.get(f.name);
      if (template !== undefined) {
        units.set(i, cluster.instanceRecords.record(i, template, 'launched'));
      }
      planned.push(i);
    }
  }
  const missing: string[] = [];
  for (const n of names) {
    const current = units.get(n.name);
    const template = n.isInstance ? units.get(n.template) : undefined;
    if (current !== undefined) units.set(n.name, { ...current, desiredState: 'launched' });
    else if (template !== undefined)
      units.set(n.name, cluster.instanceRecords.record(n.name, template, 'launched'));
    else missing.push(n.name);
    planned.push(n.name);
  }
  if (missing.length > 0) throw notFound(missing, true);
  const canSee = readable(rights);

  const { snapshot } = buildSnapshot(records, cluster.definitions);
  const result = plan(snapshot);
  const after = applyPlan(snapshot.placements, result);
  const out: PlannedUnit[] = [...new Set(planned)].map((name) => {
    const unscheduled = result.unscheduled.get(name);
    const displaces = result.place.filter((d) => d.unit === name).flatMap((d) => d.displaces);
    const record = units.get(name);
    const def = record === undefined ? undefined : cluster.definitions.shared(record);
    return {
      name,
      machine: (after.get(name) ?? []).join(','),
      // Narrowed like listings: what a caller may not read is neither named nor counted.
      displaces: [...new Set(displaces)].filter(canSee).sort(),
      global: def !== undefined && !isInvalidUnit(def) && def.fleet.global,
      ...(unscheduled === undefined
        ? {}
        : {
            unscheduled: narrowUnscheduled(
              {
                ...unscheduled,
                reasons: [...unscheduled.reasons],
                epoch: 0n,
                waiting: 0,
                waitingRanges: [],
              },
              canSee,
            ),
          }),
    };
  });
  return { units: out, machines: result.machines, drainMachine: drained };
}

/**
 * The existing instances a template file plans when the request names none of its own: each
 * as if started on the file. FAILED_PRECONDITION when it has none (a template alone places
 * nothing: name instances), or more than {@link PLAN_MAX_INSTANCES}.
 */
function templateInstances(
  cluster: ApiCluster,
  file: ValidFile,
  names: readonly UnitName[],
): string[] {
  if (names.some((n) => n.template === file.name)) return [];
  const existing = cluster.mirror.instances.get(file.name) ?? new Set<string>();
  const example = `${file.unit.name.prefix}@{1..3}.${file.unit.name.type}`;
  if (existing.size === 0) {
    throw new ApiError(
      'failed-precondition',
      `${file.name} is a template with no instances: name the instances to plan with it (flotctl plan FILE ${example})`,
    );
  }
  if (existing.size > PLAN_MAX_INSTANCES) {
    throw new ApiError(
      'failed-precondition',
      `${file.name} has ${existing.size} instances, more than the ${PLAN_MAX_INSTANCES} a plan of its file covers: name the instances to plan with it (flotctl plan FILE ${example})`,
    );
  }
  return [...existing].sort();
}
