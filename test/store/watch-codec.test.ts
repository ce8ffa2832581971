/**
 * The hand-written Watch codec against protobuf's own: etcd3's proto files, loaded by
 * @grpc/proto-loader as etcd3 loads them, encode responses and decode requests, so every
 * field is checked against the schema etcd speaks, not against the codec's own idea of it.
 */
import test from 'ava';
import fc from 'fast-check';
import { loadSync } from '@grpc/proto-loader';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { decodeWatchResponse, encodeWatchRequest } from '../../store/watch-codec.js';

const require = createRequire(import.meta.url);
const protoDir = join(dirname(require.resolve('etcd3/package.json')), 'proto');
const definition = loadSync(join(protoDir, 'rpc.proto'), {
  keepCase: true,
  longs: String,
  enums: String,
  defaults: true,
  oneofs: true,
});
interface MethodCodec {
  requestDeserialize(buf: Buffer): Record<string, unknown>;
  responseSerialize(value: unknown): Buffer;
}
const watch = (definition['etcdserverpb.Watch'] as unknown as { Watch: MethodCodec }).Watch;

const MAX_INT64 = 2n ** 63n - 1n;

test('a create request reads back through the schema with every field it set', (t) => {
  const prefix = '/flotilla/units/';
  const key = Buffer.from(prefix);
  const rangeEnd = Buffer.from('/flotilla/units0');
  for (const startRevision of [0n, 1n, 127n, 128n, 2n ** 49n + 3n, MAX_INT64]) {
    const decoded = watch.requestDeserialize(
      encodeWatchRequest({
        create: { prefix, startRevision, progressNotify: true, prevKv: true },
      }),
    );
    const create = decoded['create_request'] as Record<string, unknown>;
    t.deepEqual(create['key'], key);
    t.deepEqual(create['range_end'], rangeEnd);
    t.is(create['start_revision'], startRevision.toString());
    t.true(create['progress_notify']);
    t.true(create['prev_kv']);
  }
  const plain = watch.requestDeserialize(encodeWatchRequest({ create: { prefix } }))[
    'create_request'
  ] as Record<string, unknown>;
  t.is(plain['start_revision'], '0');
  t.false(plain['progress_notify']);
  t.false(plain['prev_kv']);
});

test('a progress request is the empty progress_request', (t) => {
  const decoded = watch.requestDeserialize(encodeWatchRequest({ progress: true }));
  t.is(decoded['request_union'], 'progress_request');
});

const int64 = fc.oneof(
  fc.bigInt({ min: 0n, max: 1_000_000n }),
  fc.bigInt({ min: 0n, max: MAX_INT64 }),
  fc.constantFrom(0n, 2n ** 49n - 1n, 2n ** 49n, 2n ** 53n + 1n, MAX_INT64),
);
const keyValue = fc.record({
  key: fc.string({ unit: 'grapheme', maxLength: 40 }),
  value: fc.uint8Array({ maxLength: 64 }),
  createRevision: int64,
  modRevision: int64,
  version: int64,
  lease: int64,
});
const event = fc.record({
  type: fc.constantFrom('put' as const, 'delete' as const),
  kv: keyValue,
  prev: fc.option(keyValue, { nil: undefined }),
});
const response = fc.record({
  revision: int64,
  created: fc.boolean(),
  canceled: fc.boolean(),
  cancelReason: fc.string({ maxLength: 30 }),
  compactRevision: int64,
  events: fc.array(event, { maxLength: 6 }),
  clusterId: int64,
  watchId: int64,
});

type KV = typeof keyValue extends fc.Arbitrary<infer V> ? V : never;
const wireKv = (kv: KV): Record<string, unknown> => ({
  key: Buffer.from(kv.key),
  value: Buffer.from(kv.value),
  create_revision: kv.createRevision.toString(),
  mod_revision: kv.modRevision.toString(),
  version: kv.version.toString(),
  lease: kv.lease.toString(),
});

test('every response the schema encodes decodes to the same changes, 64-bit fields exactly', (t) => {
  fc.assert(
    fc.property(response, (r) => {
      const buf = watch.responseSerialize({
        header: {
          cluster_id: r.clusterId.toString(),
          member_id: '12345',
          revision: r.revision.toString(),
          raft_term: '7',
        },
        watch_id: r.watchId.toString(),
        created: r.created,
        canceled: r.canceled,
        compact_revision: r.compactRevision.toString(),
        cancel_reason: r.cancelReason,
        events: r.events.map((e) => ({
          type: e.type === 'delete' ? 'Delete' : 'Put', // the enum's names in etcd's kv.proto
          kv: wireKv(e.kv),
          ...(e.prev === undefined ? {} : { prev_kv: wireKv(e.prev) }),
        })),
      });
      const got = decodeWatchResponse(buf);
      const kv = (x: KV) => ({ ...x, value: Buffer.from(x.value) });
      t.deepEqual(
        {
          ...got,
          events: got.events.map((e) => ({ ...e, kv: { ...e.kv }, prev: e.prev && { ...e.prev } })),
        },
        {
          revision: r.revision,
          created: r.created,
          canceled: r.canceled,
          cancelReason: r.cancelReason,
          compactRevision: r.compactRevision,
          events: r.events.map((e) => ({
            type: e.type,
            kv: kv(e.kv),
            prev: e.prev === undefined ? undefined : kv(e.prev),
          })),
        },
      );
    }),
    { numRuns: 300 },
  );
});

test('a truncated or corrupt message is refused with what is wrong, never misread', (t) => {
  const buf = watch.responseSerialize({
    header: { revision: '42' },
    events: [
      { type: 'Put', kv: { key: Buffer.from('/k'), value: Buffer.from('v'), mod_revision: '42' } },
    ],
  });
  // A cut inside a field is refused; one between fields is a shorter valid message (protobuf
  // cannot tell), which must then hold no half-read event.
  let refused = 0;
  for (let cut = 1; cut < buf.length; cut++) {
    let events: unknown[] | undefined;
    try {
      events = decodeWatchResponse(buf.subarray(0, cut)).events;
    } catch (err) {
      refused += 1;
      t.regex((err as Error).message, /^malformed etcd watch message: .+ at byte \d+$/);
    }
    if (events !== undefined) t.deepEqual(events, [], `cut at ${cut} of ${buf.length}`);
  }
  t.true(refused >= buf.length - 3, `${refused} of ${buf.length - 1} cuts refused`);
  t.throws(() => decodeWatchResponse(Buffer.from([0x0f])), { message: /unknown wire type 7/ });
  t.throws(() => decodeWatchResponse(Buffer.alloc(12, 0xff)), { message: /too long/ });
});
