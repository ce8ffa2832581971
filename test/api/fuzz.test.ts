/**
 * API fuzzing against a real API server and etcd: random and malformed requests (huge and odd
 * names, thousands of units, broken UTF-16 that reaches the server as invalid UTF-8, negative
 * and huge numbers, missing fields) to every unary call. Each must answer, or fail with a
 * gRPC code that is not UNKNOWN or INTERNAL and a bounded message; a failed call writes
 * nothing; and the server answers normally afterwards.
 */
import { status } from '@grpc/grpc-js';
import test from 'ava';
import fc from 'fast-check';
import { codecs } from '../../store/index.js';
import { etcdForFile, makeMachine, unitText } from '../../testkit/index.js';
import { fingerprint, isServiceError, startApi, type Api } from './api-kit.js';

const server = etcdForFile(test);

/** The most a status message may hold (scheduler/gate/errors.ts caps them at 32 KiB). */
const MAX_DETAILS = 40 * 1024;

/** Strings a user (or an attacker) might send: ordinary, odd, huge, broken. */
const text = fc.oneof(
  {
    arbitrary: fc.constantFrom(
      '',
      'web@.service',
      'web@1.service',
      'a.service',
      'm1',
      'launched',
      'web*',
    ),
    weight: 6,
  },
  fc.string({ maxLength: 40 }),
  fc.string({ unit: 'binary', maxLength: 40 }),
  fc.constantFrom('\uD800x.service', 'a\u0000b.service', '../../etc/passwd', 'a/b.service'),
  fc.integer({ min: 1_000, max: 300_000 }).map((n) => 'x'.repeat(n)),
);
const names = fc.oneof(
  fc.array(text, { maxLength: 5 }),
  fc
    .integer({ min: 129, max: 3_000 })
    .map((n) => Array.from({ length: n }, (_, i) => `u${i}.service`)),
);
const number = fc.oneof(
  fc.integer({ min: -5, max: 200 }),
  fc.constantFrom(-2_147_483_648, 2_147_483_647, 1_000_001),
);
const file = fc.record({ name: text, contents: fc.oneof(text, fc.constant(unitText())) });

/** One random call, as a function of the API. */
const call = fc.oneof(
  fc
    .record({ files: fc.array(file, { maxLength: 3 }), replace: fc.boolean() })
    .map((r) => (api: Api) => api.submit(r)),
  fc.tuple(names, text).map(
    ([n, s]) =>
      (api: Api) =>
        api.setDesired(n, s),
  ),
  names.map((n) => (api: Api) => api.destroy(n)),
  text.map((n) => (api: Api) => api.get(n)),
  fc
    .record({ pageSize: number, pageToken: text, nameGlob: text, machine: text })
    .map((r) => (api: Api) => api.list(r)),
  fc.tuple(text, number).map(
    ([tpl, n]) =>
      (api: Api) =>
        api.scale(tpl, n),
  ),
  fc
    .record({ files: fc.array(file, { maxLength: 2 }), names })
    .map((r) => (api: Api) => api.plan(r)),
  fc.record({ pageSize: number, pageToken: text }).map((r) => (api: Api) => api.listMachines(r)),
  fc
    .record({
      machine: text,
      set: fc.dictionary(text, text, { maxKeys: 3 }),
      remove: fc.array(text, { maxLength: 3 }),
    })
    .map((r) => (api: Api) => api.setMetadata(r)),
  fc.tuple(text, fc.boolean()).map(
    ([m, d]) =>
      (api: Api) =>
        api.drain(m, d),
  ),
);

test('random and malformed requests get an answer or a bounded, coded error, and a failed one writes nothing', async (t) => {
  const api = await startApi(t, server());
  await api.submit({ files: [{ name: 'web@.service', contents: unitText() }] });
  await api.store.putRecord(
    codecs.machine,
    api.store.keys.machine('m1'),
    makeMachine({ id: 'm1' }),
  );
  const problems: string[] = [];
  const outcomes = new Map<string, number>();
  const count = (what: string): void => void outcomes.set(what, (outcomes.get(what) ?? 0) + 1);
  await fc.assert(
    fc.asyncProperty(call, async (fn) => {
      const before = await fingerprint(api.store);
      try {
        await fn(api);
        count('OK');
        return;
      } catch (err) {
        if (!isServiceError(err)) throw err;
        count(status[err.code] ?? String(err.code));
        if (err.code === status.UNKNOWN || err.code === status.INTERNAL) {
          problems.push(`${status[err.code]}: ${err.details.slice(0, 200)}`);
        }
        if (err.details.length > MAX_DETAILS)
          problems.push(`details of ${err.details.length} chars`);
        if (err.code !== status.DEADLINE_EXCEEDED && err.code !== status.UNAVAILABLE) {
          const after = await fingerprint(api.store);
          if (after.join('\n') !== before.join('\n'))
            problems.push(`a failed call wrote: ${err.details.slice(0, 200)}`);
        }
      }
    }),
    { numRuns: 300, seed: 20261204 },
  );
  t.log([...outcomes].map(([k, n]) => `${k} ${n}`).join(', '));
  t.true(outcomes.size >= 3, 'the requests reached several outcomes, not one rejection');
  t.deepEqual(problems, []);
  // The server still works: a new unit goes in and comes back.
  await api.submit({ files: [{ name: 'after-fuzz.service', contents: unitText() }] });
  t.is((await api.get('after-fuzz.service')).unit?.name, 'after-fuzz.service');
});
