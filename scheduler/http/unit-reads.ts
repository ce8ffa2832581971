/**
 * The JSON API's reads: units (paged, by glob, machine or names), a unit's status and its
 * file, machines (paged), a rollout, the scheduler replicas. Each is the gRPC handler's own
 * function (scheduler/api/) behind the same gate rule, its answer the proto message's JSON
 * (proto3 JSON: camelCase, 64-bit numbers as strings, fields at their default left out).
 */
import {
  GetRolloutRequest,
  GetUnitRequest,
  ListUnitsRequest,
  ListUnitsResponse,
  RolloutStatus,
  UnitStatus,
} from '../../proto/flotilla/v1/units.js';
import {
  ListMachinesRequest,
  ListMachinesResponse,
  ListSchedulersResponse,
} from '../../proto/flotilla/v1/machines.js';
import { getUnit, listUnits } from '../api/list-units.js';
import { listMachines } from '../api/machines.js';
import { getRollout } from '../api/rollout.js';
import { listSchedulers } from '../api/schedulers.js';
import { flagParam, intParam, param, params } from './query.js';
import type { HttpCall, HttpHandler } from './router.js';
import type { HttpDeps } from './deps.js';

/** The read routes' handlers. */
export function unitReads(
  d: HttpDeps,
): Record<
  'listUnits' | 'getUnit' | 'unitFile' | 'listMachines' | 'getRollout' | 'listSchedulers',
  HttpHandler
> {
  const { cluster } = d.core;
  const unitOf = (call: HttpCall) => {
    const req = GetUnitRequest.create({ name: call.params['name'] ?? '' });
    return call.gated('Units.GetUnit', req, (_v, rights) => getUnit(cluster, req, rights));
  };
  return {
    listUnits: async (call) => {
      const u = call.url;
      const req = ListUnitsRequest.create({
        pageSize: intParam(u, 'pageSize', 0),
        pageToken: param(u, 'pageToken') ?? '',
        nameGlob: param(u, 'glob') ?? '',
        machine: param(u, 'machine') ?? '',
        withFiles: flagParam(u, 'files'),
        names: params(u, 'name'),
        brief: flagParam(u, 'brief'),
      });
      const res = await call.gated('Units.ListUnits', req, (visible, rights) =>
        listUnits(cluster, req, visible, rights),
      );
      call.send(200, ListUnitsResponse.toJSON(res));
    },
    getUnit: async (call) => call.send(200, UnitStatus.toJSON(await unitOf(call))),
    unitFile: async (call) => {
      const status = await unitOf(call);
      const text = status.unit?.file ?? '';
      call.res.writeHead(200, {
        'content-type': 'text/plain; charset=utf-8',
        'cache-control': 'no-store',
        'content-length': String(Buffer.byteLength(text)),
        etag: `"${status.unit?.hash ?? ''}"`,
      });
      call.res.end(call.req.method === 'HEAD' ? undefined : text);
    },
    listMachines: async (call) => {
      const req = ListMachinesRequest.create({
        pageSize: intParam(call.url, 'pageSize', 0),
        pageToken: param(call.url, 'pageToken') ?? '',
      });
      const res = await call.gated('Machines.ListMachines', req, () => listMachines(cluster, req));
      call.send(200, ListMachinesResponse.toJSON(res));
    },
    getRollout: async (call) => {
      const req = GetRolloutRequest.create({ name: call.params['name'] ?? '' });
      const res = await call.gated('Units.GetRollout', req, () => getRollout(cluster, req));
      call.send(200, RolloutStatus.toJSON(res));
    },
    listSchedulers: async (call) => {
      const res = await call.gated('Machines.ListSchedulers', {}, () => listSchedulers(cluster));
      call.send(200, ListSchedulersResponse.toJSON(res));
    },
  };
}
