/**
 * fleet's API v1 (`/fleet/v1/`): what fleetctl v1.0.0 and tools written for fleet speak,
 * served over Flotilla's model by the gRPC API's own handlers. See README.md.
 */
import type { Logger } from 'pino';
import type { ApiCore } from '../api/core.js';
import { FleetApi } from './router.js';
import { startFleetSocket, type FleetSocket } from './serve.js';

export {
  FleetApi,
  errorBody,
  FLEET_BODY_MAX_BYTES,
  type FleetRequest,
  type FleetGate,
} from './router.js';
export { serveFleet, startFleetSocket, type FleetSocket } from './serve.js';
export { contentTypes, FLEET_PREFIX, sendAnswer } from './wire.js';

/** Serves fleet's API over `core`'s handlers and gate on unix socket `path`. */
export function startFleetOnSocket(
  path: string,
  core: ApiCore,
  logger: Logger,
): Promise<FleetSocket> {
  const log = logger.child({ component: 'fleet-api' });
  return startFleetSocket(path, new FleetApi(core.cluster, log), core.gate, log);
}
