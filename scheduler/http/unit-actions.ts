/**
 * The JSON API's actions: submit, plan, start, stop, unload, destroy, scale, update,
 * rollback, drain and undrain. Each is the gRPC handler's own function (scheduler/api/)
 * behind the gate rule of its gRPC method, so admission, limits, the audit log and every
 * error code are the same; the body is checked strictly first (body.ts).
 */
import {
  DestroyUnitsRequest,
  DestroyUnitsResponse,
  PlanRequest,
  PlanResponse,
  RollbackRequest,
  RolloutStatus,
  ScaleRequest,
  ScaleResponse,
  SetDesiredStateRequest,
  SetDesiredStateResponse,
  SubmitUnitsRequest,
  SubmitUnitsResponse,
  UpdateUnitRequest,
} from '../../proto/flotilla/v1/units.js';
import { DrainMachineRequest, MachineStatus } from '../../proto/flotilla/v1/machines.js';
import { destroyUnits, setDesiredState } from '../api/desired.js';
import { setDrained } from '../api/machines.js';
import { planUnits } from '../api/plan.js';
import { rollback, updateUnit } from '../api/rollout.js';
import type { ApiCluster } from '../api/reads.js';
import { scale } from '../api/scale.js';
import { submitUnits } from '../api/submit.js';
import { checkBody } from './body.js';
import { HttpError } from './errors.js';
import type { HttpCall, HttpHandler } from './router.js';
import type { HttpDeps } from './deps.js';

/** The desired state each state action sets. */
const STATES: Readonly<Record<string, string>> = {
  start: 'launched',
  stop: 'loaded',
  load: 'loaded',
  unload: 'inactive',
};

/** The action routes' handlers. */
export function unitActions(
  d: HttpDeps,
): Record<'submit' | 'plan' | 'bulk' | 'unit' | 'destroy' | 'machine' | 'rollback', HttpHandler> {
  const { cluster } = d.core;
  return {
    submit: async (call) => {
      const body = checkBody(await call.json(), {
        files: 'files',
        replace: 'boolean',
        desiredState: 'string',
        allowPending: 'boolean',
      });
      const req = SubmitUnitsRequest.fromJSON(body);
      const res = await call.gated('Units.SubmitUnits', req, (_v, rights) =>
        submitUnits(cluster, req, rights),
      );
      call.send(200, SubmitUnitsResponse.toJSON(res));
    },
    plan: async (call) => {
      const body = checkBody(await call.json(), {
        files: 'files',
        names: 'strings',
        drainMachine: 'string',
      });
      const req = PlanRequest.fromJSON(body);
      const res = await call.gated('Units.Plan', req, (_v, rights) =>
        planUnits(cluster, req, rights),
      );
      call.send(200, PlanResponse.toJSON(res));
    },
    bulk: async (call) => {
      const action = call.params['action'] ?? '';
      const body = checkBody(await call.json(), { names: 'strings', allowPending: 'boolean' });
      const names = (body['names'] as string[] | undefined) ?? [];
      await stateOrDestroy(call, cluster, action, names, body['allowPending'] === true);
    },
    unit: async (call) => {
      const name = call.params['name'] ?? '';
      const action = call.params['action'] ?? '';
      if (action === 'scale') return scaleRoute(call, cluster, name);
      if (action === 'update') return updateRoute(call, cluster, name);
      const body = checkBody(await call.json(), { allowPending: 'boolean' });
      await stateOrDestroy(call, cluster, action, [name], body['allowPending'] === true);
    },
    destroy: async (call) => {
      checkBody(await call.json(), {});
      await stateOrDestroy(call, cluster, 'destroy', [call.params['name'] ?? ''], false);
    },
    machine: async (call) => {
      const action = call.params['action'];
      if (action !== 'drain' && action !== 'undrain') {
        throw new HttpError(
          404,
          'NOT_FOUND',
          `no machine action "${String(action).slice(0, 50)}"; use drain or undrain`,
        );
      }
      checkBody(await call.json(), {});
      const req = DrainMachineRequest.create({ machine: call.params['machine'] ?? '' });
      const drained = action === 'drain';
      const method = drained ? 'Machines.DrainMachine' : 'Machines.UndrainMachine';
      const res = await call.gated(method, req, () => setDrained(cluster, req, drained));
      call.send(200, MachineStatus.toJSON(res));
    },
    rollback: async (call) => {
      checkBody(await call.json(), {});
      const req = RollbackRequest.create({ name: call.params['name'] ?? '' });
      const res = await call.gated('Units.Rollback', req, () => rollback(cluster, req));
      call.send(200, RolloutStatus.toJSON(res));
    },
  };
}

async function stateOrDestroy(
  call: HttpCall,
  cluster: ApiCluster,
  action: string,
  names: string[],
  allowPending: boolean,
): Promise<void> {
  if (action === 'destroy') {
    const req = DestroyUnitsRequest.create({ names });
    const res = await call.gated('Units.DestroyUnits', req, () => destroyUnits(cluster, req));
    call.send(200, DestroyUnitsResponse.toJSON(res));
    return;
  }
  const desiredState = STATES[action];
  if (desiredState === undefined) {
    throw new HttpError(
      404,
      'NOT_FOUND',
      `no action "${action.slice(0, 50)}"; use start, stop, load, unload, destroy${names.length === 1 ? ', scale or update' : ''}`,
    );
  }
  const req = SetDesiredStateRequest.create({ names, desiredState, allowPending });
  const res = await call.gated('Units.SetDesiredState', req, (_v, rights) =>
    setDesiredState(cluster, req, rights),
  );
  call.send(200, SetDesiredStateResponse.toJSON(res));
}

async function scaleRoute(call: HttpCall, cluster: ApiCluster, template: string): Promise<void> {
  const body = checkBody(await call.json(), {
    count: 'int',
    allowPending: 'boolean',
    dryRun: 'boolean',
  });
  if (body['count'] === undefined)
    throw new HttpError(400, 'INVALID_ARGUMENT', 'send {"count": N}');
  const req = ScaleRequest.fromJSON({ ...body, template });
  const res = await call.gated('Units.Scale', req, (_v, rights) => scale(cluster, req, rights));
  call.send(200, ScaleResponse.toJSON(res));
}

async function updateRoute(call: HttpCall, cluster: ApiCluster, name: string): Promise<void> {
  const body = checkBody(await call.json(), {
    file: 'file',
    contents: 'string',
    parallelism: 'int',
    delayMs: 'int',
    monitorMs: 'int',
    failureAction: 'string',
    order: 'string',
    force: 'boolean',
    healthyDeadlineMs: 'int',
  });
  const file = body['file'] as { name: string; contents: string } | undefined;
  if (file !== undefined && file.name !== name) {
    throw new HttpError(
      400,
      'INVALID_ARGUMENT',
      `the file is named ${file.name.slice(0, 256)}, not ${name}: update one unit by its own name`,
    );
  }
  const contents = file?.contents ?? body['contents'];
  if (typeof contents !== 'string') {
    throw new HttpError(400, 'INVALID_ARGUMENT', 'send the new unit file as {"contents": "..."}');
  }
  // Absent durations mean the file's own Update*= keys, as flotctl's absent flags do.
  const req = UpdateUnitRequest.fromJSON({
    delayMs: -1,
    monitorMs: -1,
    ...body,
    contents: undefined,
    file: { name, contents },
  });
  const res = await call.gated('Units.UpdateUnit', req, (_v, rights) =>
    updateUnit(cluster, req, rights),
  );
  call.send(200, RolloutStatus.toJSON(res));
}
