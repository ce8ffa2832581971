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
import { buildSnapshot } from '../view/snapshot.js';
import { ApiError } from '../gate/errors.js';
import { notFound } from './desired.js';
import { readCluster, fresh, type ApiCluster } from './reads.js';
import { parseNames, validateFiles } from './unit-writes.js';

/** Plan; see units.proto and this module's comment. */
export async function planUnits(cluster: ApiCluster, req: PlanRequest): Promise<PlanResponse> {
  if (req.files.length === 0 && req.names.length === 0) {
    throw new ApiError('invalid-argument', 'nothing to plan: give unit files or unit names');
  }
  const files = validateFiles(req.files);
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
  for (const f of files) {
    units.set(f.name, {
      name: f.name,
      file: f.contents,
      hash: f.unit.hash,
      desiredState: 'launched',
    });
    if (!f.unit.name.isTemplate) planned.push(f.name);
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

  const { snapshot } = buildSnapshot(records, cluster.definitions);
  const result = plan(snapshot);
  const after = applyPlan(snapshot.placements, result);
  const out: PlannedUnit[] = [...new Set(planned)].map((name) => {
    const unscheduled = result.unscheduled.get(name);
    const displaces = result.place.filter((d) => d.unit === name).flatMap((d) => d.displaces);
    return {
      name,
      machine: (after.get(name) ?? []).join(','),
      displaces: [...new Set(displaces)].sort(),
      ...(unscheduled === undefined
        ? {}
        : {
            unscheduled: {
              ...unscheduled,
              reasons: [...unscheduled.reasons],
              epoch: 0n,
              waiting: 0,
              waitingRanges: [],
            },
          }),
    };
  });
  return { units: out, machines: result.machines };
}
