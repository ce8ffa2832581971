import { readFileSync } from 'node:fs';
import { status } from '@grpc/grpc-js';
import test from 'ava';
import { codecs } from '../../store/index.js';
import { etcdForFile, unitText, EXAMPLES } from '../../testkit/index.js';
import {
  failure,
  fingerprint,
  recordNames,
  startApi,
  storedUnit,
  unitNames,
  type Api,
} from './api-kit.js';

const WEB = readFileSync(`${EXAMPLES}web@.service`, 'utf8');

const server = etcdForFile(test);

/**
 * These tests have no machines: every instance they start waits, which admission refuses
 * unless pending instances are allowed (admission itself: admission.test.ts).
 */
const PENDING = { allowPending: true };

/** What etcd holds of `name`'s desired state (its own record, or its count record's). */
async function desiredOf(api: Api, name: string): Promise<string | undefined> {
  return (await storedUnit(api.store, name))?.desiredState;
}

test('starting an instance of a submitted template creates it with the template file', async (t) => {
  const api = await startApi(t, server());
  await api.submit({ files: [{ name: 'web@.service', contents: WEB }] });
  const template = await api.store.getRecord(codecs.unit, api.store.keys.unit('web@.service'));
  const res = await api.setDesired(['web@3.service'], 'launched', true);
  t.deepEqual(res.changed, ['web@3.service']);
  const instance = await api.store.getRecord(codecs.unit, api.store.keys.unit('web@3.service'));
  t.is(instance?.value.file, WEB);
  t.is(instance?.value.hash, template?.value.hash);
  t.is(instance?.value.desiredState, 'launched');
  t.is(instance?.modRevision, res.revision);

  const again = await api.setDesired(['web@3.service'], 'launched', true);
  t.deepEqual(again.unchanged, ['web@3.service']);
  const stopped = await api.setDesired(['web@3.service'], 'loaded');
  t.deepEqual(stopped.changed, ['web@3.service']);
  t.is(await desiredOf(api, 'web@3.service'), 'loaded');
});

test('one unknown name fails the whole request with NOT_FOUND and writes nothing', async (t) => {
  const api = await startApi(t, server());
  await api.submit({
    files: [
      { name: 'a.service', contents: unitText() },
      { name: 'web@.service', contents: WEB },
    ],
  });
  const before = await fingerprint(api.store);
  const err = await failure(
    api.setDesired(['a.service', 'web@1.service', 'ghost.service', 'api@2.service'], 'launched'),
  );
  t.is(err.code, status.NOT_FOUND);
  t.regex(err.details, /ghost\.service/);
  t.regex(err.details, /api@2\.service/);
  t.notRegex(err.details, /a\.service|web@1/);
  t.deepEqual(await fingerprint(api.store), before);
  t.is(await desiredOf(api, 'a.service'), 'inactive');
});

test('a template cannot be started, and bad names or states are INVALID_ARGUMENT', async (t) => {
  const api = await startApi(t, server());
  await api.submit({ files: [{ name: 'web@.service', contents: WEB }] });
  const before = await fingerprint(api.store);
  const template = await failure(api.setDesired(['web@.service'], 'launched'));
  t.is(template.code, status.FAILED_PRECONDITION);
  t.regex(template.details, /web@\.service/);
  const badName = await failure(api.setDesired(['no type'], 'launched'));
  t.is(badName.code, status.INVALID_ARGUMENT);
  const badState = await failure(api.setDesired(['web@1.service'], 'started'));
  t.is(badState.code, status.INVALID_ARGUMENT);
  t.deepEqual(await fingerprint(api.store), before);
});

test('starting instances that together outgrow one etcd request is INVALID_ARGUMENT naming the limit', async (t) => {
  const api = await startApi(t, server());
  // Each instance record carries its template's file: ten copies of 200 KB are 2 MB.
  const big = `${unitText()}#${'p'.repeat(200_000)}\n`;
  await api.submit({ files: [{ name: 'big@.service', contents: big }] });
  const before = await fingerprint(api.store);
  const names = Array.from({ length: 10 }, (_, i) => `big@${i + 1}.service`);
  const err = await failure(api.setDesired(names, 'launched', true));
  t.is(err.code, status.INVALID_ARGUMENT);
  t.regex(err.details, /too large.*--max-request-bytes \(1\.5 MiB by default\)/);
  t.regex(err.details, /change fewer or smaller units at once$/);
  t.deepEqual(await fingerprint(api.store), before);
});

test('destroy removes the named units; an unknown name removes nothing', async (t) => {
  const api = await startApi(t, server());
  await api.submit({
    files: ['a', 'b', 'c'].map((n) => ({ name: `${n}.service`, contents: unitText() })),
  });
  const before = await fingerprint(api.store);
  const err = await failure(api.destroy(['a.service', 'zz.service']));
  t.is(err.code, status.NOT_FOUND);
  t.regex(err.details, /zz\.service/);
  t.deepEqual(await fingerprint(api.store), before);

  const res = await api.destroy(['a.service', 'c.service']);
  t.deepEqual(res.destroyed, ['a.service', 'c.service']);
  t.deepEqual(await unitNames(api.store), ['b.service']);
});

test('scale creates the lowest free numbers and destroys the highest', async (t) => {
  const api = await startApi(t, server());
  await api.submit({ files: [{ name: 'web@.service', contents: WEB }] });
  const up = await api.scale('web', 3, PENDING);
  t.deepEqual(up.started, ['web@1.service', 'web@2.service', 'web@3.service']);
  t.deepEqual(up.instances, ['web@1.service', 'web@2.service', 'web@3.service']);
  t.is(await desiredOf(api, 'web@2.service'), 'launched');

  await api.destroy(['web@2.service']);
  await api.setDesired(['web@canary.service'], 'launched', true); // not a numbered instance
  const grow = await api.scale('web@.service', 4, PENDING);
  t.deepEqual(grow.started, ['web@2.service', 'web@4.service']);
  t.deepEqual(grow.instances, ['web@1.service', 'web@2.service', 'web@3.service', 'web@4.service']);

  await api.setDesired(['web@1.service'], 'inactive');
  const shrink = await api.scale('web@', 2);
  t.deepEqual(shrink.destroyed, ['web@3.service', 'web@4.service']);
  t.deepEqual(shrink.started, ['web@1.service'], 'a kept instance that was stopped is started');
  t.deepEqual(shrink.instances, ['web@1.service', 'web@2.service']);
  t.deepEqual(await unitNames(api.store), [
    'web@.service',
    'web@1.service',
    'web@2.service',
    'web@canary.service',
  ]);

  const same = await api.scale('web', 2);
  t.deepEqual([same.started, same.destroyed], [[], []]);
  const none = await api.scale('web', 0);
  t.deepEqual(none.destroyed, ['web@1.service', 'web@2.service']);
  t.deepEqual(none.instances, []);
});

test('scale refuses negative counts, unknown templates and non-templates', async (t) => {
  const api = await startApi(t, server());
  await api.submit({ files: [{ name: 'a.service', contents: unitText() }] });
  const before = await fingerprint(api.store);
  t.is((await failure(api.scale('web', -1))).code, status.INVALID_ARGUMENT);
  const unknown = await failure(api.scale('web', 2));
  t.is(unknown.code, status.NOT_FOUND);
  t.regex(unknown.details, /web@\.service/);
  t.is((await failure(api.scale('a.service', 2))).code, status.INVALID_ARGUMENT);
  t.deepEqual(await fingerprint(api.store), before);
});

test('a scale to 300 writes one count record and no instance record, and reaches the count', async (t) => {
  const api = await startApi(t, server());
  await api.submit({ files: [{ name: 'web@.service', contents: WEB }] });
  const up = await api.scale('web', 300, PENDING);
  t.is(up.started.length, 300);
  t.is(up.instances.length, 300);
  t.is(up.instances.at(-1), 'web@300.service');
  t.deepEqual(await recordNames(api.store), ['web@.service'], 'no units/web@N record');
  const count = await api.store.getRecord(
    codecs['instance-count'],
    api.store.keys.instanceCount('web@.service'),
  );
  const template = await api.store.getRecord(codecs.unit, api.store.keys.unit('web@.service'));
  t.deepEqual(count?.value.ranges, [{ first: 1, last: 300 }]);
  t.is(count?.value.hash, template?.value.hash, 'instances carry their template hash');
  t.is(count?.value.file, WEB);
  t.is(count?.value.desiredState, 'launched');
  t.is((await unitNames(api.store)).length, 301);
  const one = await api.get('web@217.service');
  t.is(one.unit?.desiredState, 'launched');

  const down = await api.scale('web', 10);
  t.is(down.destroyed.length, 290);
  t.is(down.destroyed.at(-1), 'web@300.service');
  t.is(down.instances.length, 10);
  t.is((await unitNames(api.store)).length, 11);
  const after = await api.store.getRecord(
    codecs['instance-count'],
    api.store.keys.instanceCount('web@.service'),
  );
  t.deepEqual(after?.value.ranges, [{ first: 1, last: 10 }]);
});

test('two concurrent scales of one template end at one of the two counts, numbered without gaps', async (t) => {
  const api = await startApi(t, server());
  await api.submit({ files: [{ name: 'web@.service', contents: WEB }] });
  const numbered = async (): Promise<number[]> =>
    (await unitNames(api.store))
      .filter((n) => n !== 'web@.service')
      .map((n) => Number(n.slice('web@'.length, -'.service'.length)))
      .sort((a, b) => a - b);
  for (const [from, a, b] of [
    [0, 300, 500],
    [400, 100, 700],
    [250, 600, 20],
  ] as const) {
    await api.scale('web', from, PENDING);
    const results = await Promise.allSettled([
      api.scale('web', a, PENDING),
      api.scale('web', b, PENDING),
    ]);
    const numbers = await numbered();
    const what = `from ${from}, scales to ${a} and ${b}`;
    t.true(numbers.length === a || numbers.length === b, `${what} ended at ${numbers.length}`);
    t.deepEqual(
      numbers,
      Array.from({ length: numbers.length }, (_, i) => i + 1),
      `${what}: numbered 1..N`,
    );
    const won = results.flatMap((r) =>
      r.status === 'fulfilled' ? [r.value.instances.length] : [],
    );
    t.true(won.includes(numbers.length), `${what}: a scale that succeeded says ${numbers.length}`);
    for (const r of results) {
      if (r.status === 'fulfilled') continue;
      const err = r.reason as { code: number; details: string };
      t.is(err.code, status.ABORTED, err.details);
      t.regex(err.details, /another scale of web@\.service \(to \d+\) began while this scale/);
    }
  }
  const record = await api.store.getRecord(codecs.scale, api.store.keys.scale('web@.service'));
  t.true(record !== undefined, 'the last scale asked is recorded');
  await api.scale('web', 0);
  await api.destroy(['web@.service']);
  t.is(
    await api.store.getRecord(codecs.scale, api.store.keys.scale('web@.service')),
    undefined,
    'destroying the template removes its scale record',
  );
});
