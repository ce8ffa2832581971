/** A client of the gRPC health protocol that every daemon serves, for tests. */
import { credentials, makeGenericClientConstructor, Metadata } from '@grpc/grpc-js';
import { HealthService, type ServingStatus } from '../daemon/grpc-health.js';

export const HealthClient = makeGenericClientConstructor(HealthService, 'grpc.health.v1.Health');

/** Health.Check of `service` ("" is the server as a whole) at `address`, within `timeoutMs`. */
export function healthOf(
  address: string,
  service = '',
  timeoutMs = 20_000,
): Promise<ServingStatus> {
  const client = new HealthClient(address, credentials.createInsecure());
  return new Promise<ServingStatus>((resolve, reject) => {
    client.makeUnaryRequest(
      HealthService.check.path,
      HealthService.check.requestSerialize,
      HealthService.check.responseDeserialize,
      { service },
      new Metadata(),
      { deadline: Date.now() + timeoutMs },
      (err, res) => {
        client.close();
        if (err !== null || res === undefined) reject(err ?? new Error('no response'));
        else resolve(res.status);
      },
    );
  });
}
