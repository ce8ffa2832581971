/**
 * etcd's own auth as `flotilla cluster up --etcd-auth` sets it up (store/etcd-auth.ts), on a
 * real etcd of this file's with auth on: a machine's credentials write only what is keyed by
 * that machine, so a stolen agent credential cannot forge another machine's unit states or
 * any service's endpoints, and the agent's own writes (guarded by its placements) still pass.
 */
import test from 'ava';
import { randomBytes } from 'node:crypto';
import {
  big,
  deleteLegacyRecords,
  enableEtcdAuth,
  ensureEtcdUser,
  machineGrants,
  openStore,
  schedulerGrants,
  writeOwned,
  type Store,
  type StoreAuth,
} from '../../store/index.js';
import { etcdForFile, uniquePrefix } from '../../testkit/index.js';

const server = etcdForFile(test);
const prefix = uniquePrefix('auth');
const password = (): string => randomBytes(12).toString('hex');
const users = {
  root: { username: 'root', password: password() },
  scheduler: { username: 'flotilla-scheduler', password: password() },
  m1: { username: 'flotilla-machine-m1', password: password() },
  m2: { username: 'flotilla-machine-m2', password: password() },
} satisfies Record<string, StoreAuth>;

function storeAs(who: keyof typeof users): Store {
  return openStore({ endpoints: server().endpoint, prefix, auth: users[who] });
}

/** Turns auth on once, after this file's etcd has started (before hooks run side by side). */
let authOn: Promise<void> | undefined;
function withAuth(): Promise<void> {
  authOn ??= enableAuth();
  return authOn;
}

async function enableAuth(): Promise<void> {
  const anonymous = openStore({ endpoints: server().endpoint, prefix });
  try {
    const user = (who: keyof typeof users, grants: ReturnType<typeof schedulerGrants>) => ({
      name: users[who].username,
      password: users[who].password,
      grants,
    });
    await enableEtcdAuth(anonymous, users.root.password, [
      user('scheduler', schedulerGrants()),
      user('m1', machineGrants('m1')),
      user('m2', machineGrants('m2')),
    ]);
  } finally {
    anonymous.close();
  }
}

const denied = /permission denied/i;

test.serial(
  "machine m1's credentials are refused writing m2's states and endpoints, and any unit's old-layout state",
  async (t) => {
    await withAuth();
    const m1 = storeAs('m1');
    t.teardown(() => m1.close());
    const k = m1.keys;
    const forged = [
      ["m2's state of a unit", k.state('m2', 'web.service')],
      ["m2's copy of a Global unit", k.globalState('mon.service', 'm2')],
      ['an endpoint m2 publishes', k.endpoint('api', 'm2', 'api@1.service', 'http')],
      [
        'an endpoint of a machine whose id extends m1',
        k.endpoint('api', 'm10', 'x.service', 'http'),
      ],
      ['a state of a machine whose id extends m1', k.state('m10', 'web.service')],
      ["a unit's state under the old key", k.legacyState('web.service')],
      [
        "a service's endpoint under the old key",
        k.legacyEndpoint('api', 'm1', 'x.service', 'http'),
      ],
    ] as const;
    for (const [what, key] of forged) {
      const err = await t.throwsAsync(m1.put(key, '{}'), undefined, what);
      t.regex(String(err?.message), denied, what);
      const del = await t.throwsAsync(m1.delete(key), undefined, `delete ${what}`);
      t.regex(String(del?.message), denied, `delete ${what}`);
    }
    const read = await t.throwsAsync(m1.list(k.statesOn('m2')));
    t.regex(String(read?.message), denied, "m2's states are not m1's to read");
    // Nothing of the attempts landed: the scheduler (the whole prefix) sees none of it.
    const sched = storeAs('scheduler');
    t.teardown(() => sched.close());
    for (const [what, key] of forged) t.is(await sched.get(key), undefined, what);
  },
);

test.serial(
  'machine m1 reports its own states and endpoints, guarded by its placement, and reads every endpoint',
  async (t) => {
    await withAuth();
    const m1 = storeAs('m1');
    const sched = storeAs('scheduler');
    t.teardown(() => {
      m1.close();
      sched.close();
    });
    const k = m1.keys;
    await sched.put(k.placement('m1', 'web.service'), '{}');
    const lease = big((await m1.call(undefined, (c) => c.leaseClient.leaseGrant({ TTL: 30 }))).ID);
    await m1.put(k.machine('m1'), '{}', { lease });
    const res = await writeOwned(m1, [
      {
        type: 'put',
        key: k.state('m1', 'web.service'),
        value: '{"name":"web.service","machine":"m1"}',
        lease,
        claim: k.placement('m1', 'web.service'),
      },
      { type: 'put', key: k.globalState('mon.service', 'm1'), value: '{}', lease },
    ]);
    t.deepEqual(res.applied, [true, false], 'the placed unit is claimed; the other is not ours');
    await m1.put(k.globalState('mon.service', 'm1'), '{}', { lease });
    await m1.put(k.endpoint('api', 'm1', 'web.service', 'http'), '{}', { lease });
    await sched.put(k.endpoint('api', 'm2', 'api@2.service', 'http'), '{}');
    await sched.put(k.legacyEndpoint('api', 'm3', 'api@3.service', 'http'), '{}');
    t.is((await sched.get(k.state('m1', 'web.service')))?.lease, lease);
    const mesh = [
      ...(await m1.list(k.dir('endpoint'))).items,
      ...(await m1.list(k.legacyDir('endpoint'))).items,
    ];
    t.deepEqual(
      mesh.map((kv) => k.parse(kv.key)?.machine).sort(),
      ['m1', 'm2', 'm3'],
      "the mesh reads every machine's endpoints, both layouts",
    );
    await m1.delete(k.state('m1', 'web.service'));
    t.is(await sched.get(k.state('m1', 'web.service')), undefined);
  },
);

test.serial(
  "an earlier agent's old-layout records are deleted through its lease by a role that may, and left to the lease by one that may not",
  async (t) => {
    await withAuth();
    const sched = storeAs('scheduler');
    const m2 = storeAs('m2');
    t.teardown(() => {
      sched.close();
      m2.close();
    });
    const k = sched.keys;
    const grant = async (s: Store): Promise<bigint> =>
      big((await s.call(undefined, (c) => c.leaseClient.leaseGrant({ TTL: 30 }))).ID);
    const old = await grant(sched);
    await sched.put(k.machine('m2'), '{}', { lease: old });
    await sched.put(k.legacyState('db.service'), '{"machine":"m2"}', { lease: old });
    await sched.put(k.legacyEndpoint('db', 'm2', 'db.service', 'pg'), '{}', { lease: old });
    // m2's narrowed role may not touch states/: the records stay, to go with their lease.
    await t.throwsAsync(deleteLegacyRecords(m2, old), { message: denied });
    t.truthy(await sched.get(k.legacyState('db.service')));
    // A role that still may (the upgrade's first step, or the scheduler's) deletes just them.
    t.is(await deleteLegacyRecords(sched, old), 2);
    t.is(await sched.get(k.legacyState('db.service')), undefined);
    t.is(await sched.get(k.legacyEndpoint('db', 'm2', 'db.service', 'pg')), undefined);
    t.truthy(await sched.get(k.machine('m2')), 'the rest of the lease is left alone');
  },
);

test.serial(
  'a role an earlier version made (all of states/ and endpoints/) is left with exactly the grants of this one',
  async (t) => {
    await withAuth();
    const root = storeAs('root');
    t.teardown(() => root.close());
    const old = { username: 'flotilla-machine-m3', password: password() };
    const grants = machineGrants('m3');
    const earlier = [
      ...grants.filter((g) => !g.key.includes('unit-')),
      { permission: 'Readwrite' as const, key: 'states/' },
      { permission: 'Readwrite' as const, key: 'endpoints/' },
    ];
    await ensureEtcdUser(root, { name: old.username, password: old.password, grants: earlier });
    const m3 = openStore({ endpoints: server().endpoint, prefix, auth: old });
    t.teardown(() => m3.close());
    await m3.put(m3.keys.legacyState('forged.service'), '{}');
    t.true(await m3.delete(m3.keys.legacyState('forged.service')), 'the earlier role could');

    await ensureEtcdUser(root, { name: old.username, password: old.password, grants });
    for (const key of [
      m3.keys.legacyState('forged.service'),
      m3.keys.legacyEndpoint('api', 'm1', 'x.service', 'http'),
    ]) {
      const err = await t.throwsAsync(m3.put(key, '{}'), undefined, key);
      t.regex(String(err?.message), denied, key);
    }
    await m3.put(m3.keys.state('m3', 'web.service'), '{}');
    await t.notThrowsAsync(m3.list(m3.keys.legacyDir('endpoint')), 'it still reads endpoints/');
  },
);
