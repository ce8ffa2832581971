/**
 * gRPC server reflection over the contract's .proto files, so grpcurl-like clients can list
 * and call the API without a copy of the files. The files are found from this module's own
 * location (it runs from dist/), walking up to the checkout that holds proto/.
 *
 * Under a policy, reflection passes the gate like any call (`Reflection.ServerReflectionInfo`
 * needs `read`): an anonymous client learns nothing of a protected API, not even its methods.
 */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Server, ServerDuplexStream, UntypedServiceImplementation } from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { logFailure, toGrpcStatus, toServiceError, type ErrorContext } from '../gate/errors.js';
import type { CallGate } from '../gate/interceptors.js';
import { loadSync } from '@grpc/proto-loader';
import { ReflectionService } from '@grpc/reflection';

/** The contract's files, relative to the proto/ include directory. */
export const PROTO_FILES: readonly string[] = [
  'flotilla/v1/records.proto',
  'flotilla/v1/units.proto',
  'flotilla/v1/machines.proto',
  'flotilla/v1/events.proto',
  'flotilla/v1/logs.proto',
  'flotilla/v1/services.proto',
  'flotilla/v1/secrets.proto',
];

/** The services the API server serves, fully qualified. */
export const API_SERVICES: readonly string[] = [
  'flotilla.v1.Units',
  'flotilla.v1.Machines',
  'flotilla.v1.Events',
  'flotilla.v1.Logs',
  'flotilla.v1.Services',
  'flotilla.v1.Secrets',
];

/**
 * The proto/ include directory: the first ancestor of this module's directory holding
 * proto/flotilla/v1/units.proto. Throws naming where it looked when there is none.
 */
export function protoIncludeDir(from: string = dirname(fileURLToPath(import.meta.url))): string {
  let dir = from;
  for (;;) {
    const candidate = join(dir, 'proto');
    if (existsSync(join(candidate, 'flotilla', 'v1', 'units.proto'))) return candidate;
    const parent = dirname(dir);
    if (parent === dir) {
      throw new Error(`proto/flotilla/v1/units.proto not found in any parent of ${from}`);
    }
    dir = parent;
  }
}

/** The gate and how to word a refusal; absent: reflection is open (no policy). */
export interface ReflectionGate extends ErrorContext {
  readonly gate: CallGate;
  readonly logger: Logger;
}

/** Adds the reflection service (v1 and v1alpha) describing the API's services to `server`. */
export function addReflection(server: Server, gated?: ReflectionGate): void {
  const definition = loadSync([...PROTO_FILES], {
    includeDirs: [protoIncludeDir()],
    keepCase: true,
    longs: String,
    enums: String,
    defaults: true,
    oneofs: true,
  });
  const reflection = new ReflectionService(definition, { services: [...API_SERVICES] });
  if (gated === undefined) {
    reflection.addToServer(server);
    return;
  }
  // The library adds its own handlers; each is put behind the gate as it is added.
  const behindGate = {
    addService: (
      service: Parameters<Server['addService']>[0],
      impl: UntypedServiceImplementation,
    ) => {
      const wrapped: UntypedServiceImplementation = {};
      for (const [name, handler] of Object.entries(impl)) {
        wrapped[name] = (call: ServerDuplexStream<unknown, unknown>) => {
          try {
            gated.gate
              .admit({ ...callView(call), request: {} }, REFLECTION_METHOD)
              .done(undefined, undefined);
          } catch (err) {
            const s = toGrpcStatus(err, gated);
            logFailure(gated.logger, REFLECTION_METHOD, s, err);
            call.emit('error', toServiceError(s));
            return;
          }
          (handler as (c: ServerDuplexStream<unknown, unknown>) => void)(call);
        };
      }
      server.addService(service, wrapped);
    },
  };
  reflection.addToServer(behindGate as unknown as Server);
}

/** The method name the policy's rules know reflection by. */
export const REFLECTION_METHOD = 'Reflection.ServerReflectionInfo';

function callView(call: ServerDuplexStream<unknown, unknown>) {
  return { metadata: call.metadata, getAuthContext: () => call.getAuthContext() };
}
