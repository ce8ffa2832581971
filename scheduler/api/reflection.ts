/**
 * gRPC server reflection over the contract's .proto files, so grpcurl-like clients can list
 * and call the API without a copy of the files. The files are found from this module's own
 * location (it runs from dist/), walking up to the checkout that holds proto/.
 */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Server } from '@grpc/grpc-js';
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
];

/** The services the API server serves, fully qualified. */
export const API_SERVICES: readonly string[] = [
  'flotilla.v1.Units',
  'flotilla.v1.Machines',
  'flotilla.v1.Events',
  'flotilla.v1.Logs',
  'flotilla.v1.Services',
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

/** Adds the reflection service (v1 and v1alpha) describing the API's services to `server`. */
export function addReflection(server: Server): void {
  const definition = loadSync([...PROTO_FILES], {
    includeDirs: [protoIncludeDir()],
    keepCase: true,
    longs: String,
    enums: String,
    defaults: true,
    oneofs: true,
  });
  new ReflectionService(definition, { services: [...API_SERVICES] }).addToServer(server);
}
