/**
 * The JSON API's service reads: the services and one service's endpoints, each the gRPC
 * handler's own function (scheduler/api/services.ts) behind the same gate rule, its answer the
 * proto message's JSON.
 */
import {
  ListEndpointsRequest,
  ListEndpointsResponse,
  ListServicesRequest,
  ListServicesResponse,
} from '../../proto/flotilla/v1/services.js';
import { listEndpoints, listServices } from '../api/services.js';
import { flagParam, intParam, param } from './query.js';
import type { HttpHandler } from './router.js';
import type { HttpDeps } from './deps.js';

/** `GET /api/v1/services` and `GET /api/v1/services/:name/endpoints`. */
export function serviceReads(d: HttpDeps): Record<'listServices' | 'listEndpoints', HttpHandler> {
  const { cluster } = d.core;
  return {
    listServices: async (call) => {
      const req = ListServicesRequest.create({
        pageSize: intParam(call.url, 'pageSize', 0),
        pageToken: param(call.url, 'pageToken') ?? '',
      });
      const res = await call.gated('Services.ListServices', req, (visible) =>
        listServices(cluster, req, visible),
      );
      call.send(200, ListServicesResponse.toJSON(res));
    },
    listEndpoints: async (call) => {
      const req = ListEndpointsRequest.create({
        service: call.params['name'] ?? '',
        tag: param(call.url, 'tag') ?? '',
        healthyOnly: flagParam(call.url, 'healthy'),
        pageSize: intParam(call.url, 'pageSize', 0),
        pageToken: param(call.url, 'pageToken') ?? '',
      });
      const res = await call.gated('Services.ListEndpoints', req, (visible) =>
        listEndpoints(cluster, req, visible),
      );
      call.send(200, ListEndpointsResponse.toJSON(res));
    },
  };
}
