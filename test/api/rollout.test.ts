/**
 * UpdateUnit, Rollback and GetRollout against a real etcd (no leader runs here: these are the
 * API's own checks and writes). Bad input writes nothing; a second rollout of the same unit is
 * refused with what runs, or supersedes it with force; a rollback turns the rollout around.
 */
import { status } from '@grpc/grpc-js';
import test from 'ava';
import type { RolloutStatus, UpdateUnitRequest } from '../../proto/flotilla/v1/units.js';
import { codecs } from '../../store/index.js';
import { etcdForFile } from '../../testkit/index.js';
import { failure, fingerprint, rpc, startApi, type Api } from './api-kit.js';

const server = etcdForFile(test);

const file = (version: string, extra = ''): string =>
  `[Service]\nExecStart=/bin/sh -c 'echo ${version}; sleep 1000'\n${extra}`;

function update(api: Api, r: Partial<UpdateUnitRequest>): Promise<RolloutStatus> {
  return rpc(api.units.updateUnit.bind(api.units), {
    parallelism: 0,
    delayMs: -1n,
    monitorMs: -1n,
    failureAction: '',
    order: '',
    force: false,
    healthyDeadlineMs: 0n,
    ...r,
  });
}

async function withInstances(api: Api): Promise<void> {
  await api.submit({ files: [{ name: 'web@.service', contents: file('v1') }] });
  await api.setDesired(['web@1.service', 'web@2.service', 'web@3.service'], 'launched', true);
}

test('an update writes the template and a running rollout record with the defaults', async (t) => {
  const api = await startApi(t, server());
  await withInstances(api);
  const before = (await api.get('web@.service')).unit?.hash ?? '';
  const res = await update(api, { file: { name: 'web@.service', contents: file('v2') } });
  const r = res.rollout;
  t.is(r?.phase, 'running');
  t.is(r?.fromHash, before);
  t.not(r?.toHash, before);
  t.like(r, {
    parallelism: 1,
    delayMs: 0n,
    monitorMs: 5_000n,
    healthyDeadlineMs: 300_000n,
    failureAction: 'pause',
  });
  t.like(res, { total: 3, pending: 3, updated: 0 });
  t.is((await api.get('web@.service')).unit?.hash, r?.toHash, 'new instances get the new file');
  t.is((await api.get('web@1.service')).unit?.hash, before, 'instances wait for the leader');
  const stored = await api.store.getRecord(codecs.rollout, api.store.keys.rollout('web@.service'));
  t.is(stored?.value.toHash, r?.toHash);
  const got = await rpc(api.units.getRollout.bind(api.units), { name: 'web@.service' });
  t.is(got.rollout?.toHash, r?.toHash);
});

test('bad updates are refused with a reason and write nothing', async (t) => {
  const api = await startApi(t, server());
  await withInstances(api);
  const before = await fingerprint(api.store);
  const cases: [Partial<UpdateUnitRequest>, status, RegExp][] = [
    [
      {
        file: {
          name: 'web@.service',
          contents: '[Service]\nExecStart=/bin/true\nHealthRetries=x\n',
        },
      },
      status.INVALID_ARGUMENT,
      /web@\.service:3: HealthRetries/,
    ],
    [
      { file: { name: 'api@.service', contents: file('v1') } },
      status.NOT_FOUND,
      /not submitted: submit it first/,
    ],
    [
      { file: { name: 'web@1.service', contents: file('v2') } },
      status.INVALID_ARGUMENT,
      /instance: update or roll back its template web@\.service/,
    ],
    [
      { file: { name: 'web@.service', contents: file('v2') }, order: 'start-first' },
      status.INVALID_ARGUMENT,
      /start-first is not supported/,
    ],
    [
      { file: { name: 'web@.service', contents: file('v2') }, parallelism: 1000 },
      status.INVALID_ARGUMENT,
      /parallelism 1000/,
    ],
    [
      { file: { name: 'web@.service', contents: file('v2') }, failureAction: 'retry' },
      status.INVALID_ARGUMENT,
      /use pause or rollback/,
    ],
    [
      { file: { name: 'web@.service', contents: file('v2') }, healthyDeadlineMs: 7_200_000n },
      status.INVALID_ARGUMENT,
      /healthy deadline 7200000 ms: expected more than 0 and at most 1h/,
    ],
    [
      { file: { name: 'web@.service', contents: file('v2') }, healthyDeadlineMs: -1n },
      status.INVALID_ARGUMENT,
      /healthy deadline -1 ms/,
    ],
  ];
  for (const [req, code, re] of cases) {
    const err = await failure(update(api, req));
    t.is(err.code, code, err.details);
    t.regex(err.details, re);
  }
  const err = await failure(rpc(api.units.rollback.bind(api.units), { name: 'web@.service' }));
  t.is(err.code, status.NOT_FOUND);
  t.regex(err.details, /no rollout to roll back/);
  t.deepEqual(await fingerprint(api.store), before, 'nothing was written');
});

test('a second update while one runs is refused with what runs, and supersedes it with force', async (t) => {
  const api = await startApi(t, server());
  await withInstances(api);
  const first = await update(api, { file: { name: 'web@.service', contents: file('v2') } });
  const before = await fingerprint(api.store);
  const err = await failure(update(api, { file: { name: 'web@.service', contents: file('v3') } }));
  t.is(err.code, status.FAILED_PRECONDITION);
  t.regex(
    err.details,
    /a rollout of web@\.service to [0-9a-f]{12} is running \(0\/3 updated\).*--force/,
  );
  t.deepEqual(await fingerprint(api.store), before);
  const forced = await update(api, {
    file: { name: 'web@.service', contents: file('v3') },
    force: true,
  });
  t.not(forced.rollout?.toHash, first.rollout?.toHash);
  t.is(forced.rollout?.fromHash, first.rollout?.toHash, 'from the file the template had');
});

test('a rollback turns a rollout around and puts the template back on its old file', async (t) => {
  const api = await startApi(t, server());
  await withInstances(api);
  const v1 = (await api.get('web@.service')).unit?.hash ?? '';
  const up = await update(api, {
    file: { name: 'web@.service', contents: file('v2') },
    parallelism: 2,
  });
  const back = await rpc(api.units.rollback.bind(api.units), { name: 'web@.service' });
  t.like(back.rollout, { phase: 'running', rollback: true, toHash: v1, parallelism: 2 });
  t.is(back.rollout?.fromHash, up.rollout?.toHash);
  t.is((await api.get('web@.service')).unit?.hash, v1);
  t.is(back.pending, 0, 'no instance had left the old file');
});

test('a plain unit is updated through its rollout, not at once', async (t) => {
  const api = await startApi(t, server());
  await api.submit({
    files: [{ name: 'db.service', contents: file('v1') }],
    desiredState: 'launched',
  });
  const v1 = (await api.get('db.service')).unit?.hash ?? '';
  const res = await update(api, { file: { name: 'db.service', contents: file('v2') } });
  t.like(res, { total: 1, pending: 1 });
  t.is((await api.get('db.service')).unit?.hash, v1, 'the leader rewrites it, gated');
});

test('destroying a unit removes its rollout record', async (t) => {
  const api = await startApi(t, server());
  await withInstances(api);
  await update(api, { file: { name: 'web@.service', contents: file('v2') } });
  await api.destroy(['web@.service', 'web@1.service', 'web@2.service', 'web@3.service']);
  const key = api.store.keys.rollout('web@.service');
  t.is(await api.store.getRecord(codecs.rollout, key), undefined);
  const err = await failure(rpc(api.units.getRollout.bind(api.units), { name: 'web@.service' }));
  t.is(err.code, status.NOT_FOUND);
});

test("the file's [X-Fleet] Update*= keys are the defaults and the request's options win", async (t) => {
  const api = await startApi(t, server());
  await withInstances(api);
  const defaults =
    '[X-Fleet]\nUpdateParallelism=3\nUpdateMonitorSec=20s\nUpdateHealthyDeadlineSec=90s\nUpdateFailureAction=rollback\n';
  const res = await update(api, { file: { name: 'web@.service', contents: file('v2', defaults) } });
  t.like(res.rollout, {
    parallelism: 3,
    monitorMs: 20_000n,
    healthyDeadlineMs: 90_000n,
    failureAction: 'rollback',
    delayMs: 0n,
  });
  const forced = await update(api, {
    file: { name: 'web@.service', contents: file('v3', defaults) },
    parallelism: 1,
    monitorMs: 1_000n,
    healthyDeadlineMs: 30_000n,
    failureAction: 'pause',
    force: true,
  });
  t.like(forced.rollout, {
    parallelism: 1,
    monitorMs: 1_000n,
    healthyDeadlineMs: 30_000n,
    failureAction: 'pause',
  });
});

test('a submit replacing a file under a running rollout is refused naming the rollout, and writes nothing', async (t) => {
  const api = await startApi(t, server());
  await withInstances(api);
  const up = await update(api, { file: { name: 'web@.service', contents: file('v2') } });
  const to = (up.rollout?.toHash ?? '').slice(0, 12);
  const before = await fingerprint(api.store);
  for (const name of ['web@.service', 'web@2.service']) {
    const err = await failure(
      api.submit({ files: [{ name, contents: file('v3') }], replace: true }),
    );
    t.is(err.code, status.FAILED_PRECONDITION, name);
    t.is(
      err.details,
      `${name}: a rollout of web@.service to ${to} is running (0/3 updated), and replacing the file under it would undo or break it: wait for it (flotctl rollout status web@.service), roll it back (flotctl rollback web@.service), or supersede it with this file (flotctl update --force)`,
    );
  }
  t.deepEqual(await fingerprint(api.store), before, 'nothing was written');
  const same = await api.submit({ files: [{ name: 'web@.service', contents: file('v2') }] });
  t.deepEqual(same.unchanged, ['web@.service'], 'submitting the file it rolls to changes nothing');
});

test('a submit --replace goes ahead once the rollout has ended', async (t) => {
  const api = await startApi(t, server());
  await api.submit({ files: [{ name: 'db.service', contents: file('v1') }] });
  const up = await update(api, { file: { name: 'db.service', contents: file('v2') } });
  const key = api.store.keys.rollout('db.service');
  const done = { ...(up.rollout as NonNullable<typeof up.rollout>), phase: 'completed' };
  await api.store.putRecord(codecs.rollout, key, done);
  const res = await api.submit({
    files: [{ name: 'db.service', contents: file('v3') }],
    replace: true,
  });
  t.deepEqual(res.updated, ['db.service']);
});
