/**
 * A generic gRPC client's view of a server, as grpcurl has it: the services listed through
 * server reflection (grpc.reflection.v1), with the reflection proto that @grpc/reflection
 * ships, loaded by @grpc/proto-loader.
 */
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { Client, Metadata, type ChannelCredentials } from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';

/** The service names `address` lists through reflection; rejects on any failure. */
export async function reflectedServices(
  address: string,
  creds: ChannelCredentials,
  timeoutMs = 20_000,
  metadata: Metadata = new Metadata(),
): Promise<string[]> {
  const require = createRequire(import.meta.url);
  const root = join(dirname(require.resolve('@grpc/reflection/package.json')), 'build', 'proto');
  const definition = loadSync('grpc/reflection/v1/reflection.proto', {
    includeDirs: [root],
    keepCase: true,
  });
  const service = definition['grpc.reflection.v1.ServerReflection'];
  const method =
    service !== undefined && 'ServerReflectionInfo' in service
      ? service.ServerReflectionInfo
      : undefined;
  if (method === undefined || !('path' in method)) throw new Error('reflection.proto not loaded');
  const client = new Client(address, creds);
  try {
    const call = client.makeBidiStreamRequest(
      method.path as string,
      method.requestSerialize,
      method.responseDeserialize,
      metadata,
      { deadline: Date.now() + timeoutMs },
    );
    const response = new Promise<unknown>((resolve, reject) => {
      call.once('data', resolve);
      call.once('error', reject);
    });
    call.write({ list_services: '*' });
    const answer = await response;
    call.end();
    const list = (answer as { list_services_response?: { service?: { name?: unknown }[] } })
      .list_services_response?.service;
    return Array.isArray(list) ? list.map((s) => String(s.name)) : [];
  } finally {
    client.close();
  }
}
