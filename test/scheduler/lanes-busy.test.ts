/**
 * A replica busy with scale-ups refuses more beyond its queue at once, with
 * RESOURCE_EXHAUSTED saying when to retry, in the message and in the `retry-after-ms`
 * trailer a client can act on without reading prose.
 */
import { status } from '@grpc/grpc-js';
import test from 'ava';
import {
  AdmissionLanes,
  MAX_QUEUED_SCALE_UPS,
  RETRY_PER_SCALE_UP_MS,
} from '../../scheduler/api/lanes.js';
import {
  ApiError,
  RETRY_AFTER_METADATA,
  toGrpcStatus,
  toServiceError,
} from '../../scheduler/gate/errors.js';

test('a scale-up beyond the queue is RESOURCE_EXHAUSTED with a retry hint in the message and the trailer', async (t) => {
  const lanes = new AdmissionLanes();
  const running = await lanes.bulk('a@.service');
  const queued = Array.from({ length: MAX_QUEUED_SCALE_UPS }, (_, i) =>
    lanes.bulk(`q${i}@.service`),
  );
  const err = await t.throwsAsync(() => lanes.bulk('late@.service'), { instanceOf: ApiError });
  const wait = Math.min(60_000, (MAX_QUEUED_SCALE_UPS + 1) * RETRY_PER_SCALE_UP_MS);
  t.is(err?.code, 'resource-exhausted');
  t.regex(err?.message ?? '', new RegExp(`retry in about ${wait / 1000} s`));
  const sent = toServiceError(toGrpcStatus(err, { endpoints: [] }));
  t.is(sent.code, status.RESOURCE_EXHAUSTED);
  t.deepEqual(sent.metadata?.get(RETRY_AFTER_METADATA), [String(wait)]);

  // Once the running one is done, the queue moves and a scale-up is admitted again.
  running.done();
  const first = await queued[0];
  first?.done();
  const again = lanes.bulk('again@.service');
  for (const q of queued.slice(1)) (await q).done();
  (await again).done();
  t.is(lanes.bulkInFlight, 0);
});
