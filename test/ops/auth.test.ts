/**
 * Authorization and the audit log against a real API server (mutual TLS, real certificates),
 * a real etcd and real gRPC clients: who may do what under a policy file, that a refused call
 * writes nothing, and that every write is audited once, with the caller and nothing secret.
 */
import { readFile, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { credentials, Metadata, status, type ServiceError } from '@grpc/grpc-js';
import test, { type ExecutionContext } from 'ava';
import { channelCredentials } from '../../daemon/tls.js';
import { EventsClient } from '../../proto/flotilla/v1/events.js';
import { MachinesClient } from '../../proto/flotilla/v1/machines.js';
import { ListUnitsRequest, UnitsClient } from '../../proto/flotilla/v1/units.js';
import { hashToken, parsePolicy } from '../../scheduler/gate/auth-policy.js';
import { Authorizer, ruleOf } from '../../scheduler/gate/auth.js';
import { startApiServer } from '../../scheduler/api/server.js';
import { openStore, type Store } from '../../store/index.js';
import {
  assertEventually,
  clientTls,
  etcdForFile,
  sleep,
  pkiForFile,
  uniquePrefix,
  unitText,
  type CertFiles,
} from '../../testkit/index.js';
import { CALL_TIMEOUT_MS, fingerprint, quietLogger } from '../api/api-kit.js';
import { flotctl, unitDir } from '../cli/cli-kit.js';

const etcd = etcdForFile(test);
const pki = pkiForFile(test, 'auth-test-ca');

const TEAM_A_TOKEN = 'team-a-secret-0123456789';
const ADMIN_TOKEN = 'admin-secret-9876543210';

const POLICY = JSON.stringify({
  roles: {
    viewer: [{ verbs: ['read'], units: ['*'] }],
    'team-a': [
      { verbs: ['read', 'submit', 'start-stop', 'destroy', 'scale'], units: ['team-a-*'] },
      // Its test units run host programs as root (testkit's unitText).
      { capabilities: ['host-process', 'root'], units: ['team-a-*'] },
    ],
    admin: [{ verbs: ['admin'] }],
  },
  identities: [
    { subject: { CN: 'viewer', O: 'acme' }, roles: ['viewer'] },
    { subject: { CN: 'flotilla-test-client' }, roles: ['admin'] },
    { name: 'ci-team-a', tokenSha256: hashToken(TEAM_A_TOKEN), roles: ['team-a'] },
    { name: 'root', tokenSha256: hashToken(ADMIN_TOKEN), roles: ['admin'] },
  ],
});

interface Rig {
  readonly store: Store;
  readonly auditFile: string;
  /** A Units client presenting `cert` (default: the admin's), with `token` if given. */
  units(opts?: { cert?: CertFiles; token?: string }): Caller;
  readonly machines: MachinesClient;
}

interface Caller {
  /** Events.Watch from now on, every unit; the unit names of its events, as they come. */
  watch(): string[];
  submit(names: string[], desiredState?: string): Promise<unknown>;
  setDesired(names: string[], desiredState: string): Promise<unknown>;
  destroy(names: string[]): Promise<unknown>;
  list(): Promise<string[]>;
}

async function rig(t: ExecutionContext): Promise<Rig> {
  const dir = await mkdtemp(join(tmpdir(), 'flotilla-auth-'));
  const store = openStore({ endpoints: etcd().endpoint, prefix: uniquePrefix(t.title) });
  const p = pki();
  const server = await startApiServer({
    store,
    listen: '127.0.0.1:0',
    logger: quietLogger,
    tls: {
      cert: p.read(p.server.certFile),
      key: p.read(p.server.keyFile),
      clientCa: p.read(p.caFile),
    },
    policy: parsePolicy('policy.json', POLICY),
    auditLog: join(dir, 'audit.log'),
  });
  const clients: { close(): void }[] = [];
  t.teardown(async () => {
    for (const c of clients) c.close();
    await server.close();
    store.close();
    await rm(dir, { recursive: true, force: true });
  });
  const machines = new MachinesClient(server.address, channelCredentials(clientTls(p)));
  clients.push(machines);
  return {
    store,
    auditFile: join(dir, 'audit.log'),
    machines,
    units: (opts = {}) => {
      const c = new UnitsClient(server.address, channelCredentials(clientTls(p, opts.cert)));
      clients.push(c);
      const md = (): Metadata => {
        const m = new Metadata();
        if (opts.token !== undefined) m.set('authorization', `Bearer ${opts.token}`);
        return m;
      };
      const call = <Req, Res>(
        fn: (
          r: Req,
          m: Metadata,
          o: { deadline: number },
          cb: (e: ServiceError | null, r: Res) => void,
        ) => unknown,
        req: Req,
      ): Promise<Res> =>
        new Promise((resolve, reject) => {
          fn.call(c, req, md(), { deadline: Date.now() + CALL_TIMEOUT_MS }, (e, r) =>
            e === null ? resolve(r) : reject(e),
          );
        });
      return {
        watch: () => {
          const events = new EventsClient(
            server.address,
            channelCredentials(clientTls(p, opts.cert)),
          );
          clients.push(events);
          const seen: string[] = [];
          const stream = events.watch(
            { fromRevision: 0n, unitGlob: '', machine: '', withFiles: false },
            md(),
          );
          stream.on('data', (e: { kind: string; name: string }) => {
            if (e.kind === 'unit') seen.push(e.name);
          });
          stream.on('error', () => undefined);
          clients.push({ close: () => stream.cancel() });
          return seen;
        },
        submit: (names, desiredState = '') =>
          call(c.submitUnits, {
            files: names.map((name) => ({ name, contents: unitText() })),
            replace: false,
            desiredState,
            allowPending: false,
          }),
        setDesired: (names, desiredState) =>
          call(c.setDesiredState, { names, desiredState, allowPending: false }),
        destroy: (names) => call(c.destroyUnits, { names }),
        list: async () => {
          const res = await call(c.listUnits, ListUnitsRequest.create());
          return res.units.map((u) => u.unit?.name ?? '');
        },
      };
    },
  };
}

async function refused(t: ExecutionContext, p: Promise<unknown>): Promise<ServiceError> {
  const err = await t.throwsAsync(p);
  return err as ServiceError;
}

async function auditLines(file: string): Promise<Record<string, unknown>[]> {
  const text = await readFile(file, 'utf8').catch(() => '');
  return text
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

test('a viewer certificate can list, but its start is PERMISSION_DENIED and writes nothing', async (t) => {
  const r = await rig(t);
  await r.units().submit(['web.service']);
  const viewer = r.units({ cert: await pki().issue('viewer', '/CN=viewer/O=acme') });
  t.deepEqual(await viewer.list(), ['web.service']);

  const before = await fingerprint(r.store);
  const err = await refused(t, viewer.setDesired(['web.service'], 'launched'));
  t.is(err.code, status.PERMISSION_DENIED);
  t.regex(err.details, /CN=viewer,O=acme/, 'names the identity');
  t.regex(err.details, /may not start-stop/, 'names the verb');
  t.regex(err.details, /no role of it grants start-stop on web\.service/, 'names the grant');
  t.deepEqual(await fingerprint(r.store), before, 'nothing written');
});

test('a certificate the policy does not name may do nothing, not even read', async (t) => {
  const r = await rig(t);
  const stranger = r.units({ cert: await pki().issue('stranger', '/CN=stranger') });
  const err = await refused(t, stranger.list());
  t.is(err.code, status.PERMISSION_DENIED);
  t.regex(err.details, /CN=stranger \(no roles\) may not read/);
});

test('a team token can touch team-a-* and not team-b-*', async (t) => {
  const r = await rig(t);
  await r.units().submit(['team-b-db.service']);
  const team = r.units({ token: TEAM_A_TOKEN });
  const watched = team.watch();
  await sleep(500); // the watch is subscribed
  await team.submit(['team-a-web.service'], 'launched');
  await team.setDesired(['team-a-web.service'], 'loaded');
  await r.units().submit(['team-b-web.service']);
  await r.units().destroy(['team-b-web.service']);
  // Listings and watches of every unit are narrowed to the units the token may read.
  t.deepEqual(await team.list(), ['team-a-web.service']);
  t.deepEqual(await r.units().list(), ['team-a-web.service', 'team-b-db.service']);
  // A last write of its own: events come in order, so team-b's would have come before it.
  await team.setDesired(['team-a-web.service'], 'launched');
  await assertEventually(() => watched.length >= 3, { timeoutMs: 10_000, message: 'events' });
  t.true(
    watched.every((n) => n === 'team-a-web.service'),
    `only team-a events: ${watched.join(' ')}`,
  );

  const before = await fingerprint(r.store);
  for (const p of [
    team.submit(['team-b-web.service']),
    team.setDesired(['team-b-db.service'], 'launched'),
    team.destroy(['team-b-db.service']),
    // one unit outside the grant refuses the whole request
    team.destroy(['team-a-web.service', 'team-b-db.service']),
  ]) {
    const err = await refused(t, p);
    t.is(err.code, status.PERMISSION_DENIED);
    t.regex(err.details, /^token:ci-team-a \(roles team-a\) may not \S+ .*team-b-/);
  }
  t.deepEqual(await fingerprint(r.store), before, 'the refused calls wrote nothing');
  await team.destroy(['team-a-web.service']);
  t.deepEqual(await r.units().list(), ['team-b-db.service']);
});

test('an unknown token is UNAUTHENTICATED and the answer does not repeat it', async (t) => {
  const r = await rig(t);
  const err = await refused(t, r.units({ token: 'not-a-known-token' }).list());
  t.is(err.code, status.UNAUTHENTICATED);
  t.notRegex(err.details, /not-a-known-token/);
});

test('every write appears once in the audit log, with the identity and nothing secret', async (t) => {
  const r = await rig(t);
  const admin = r.units();
  const team = r.units({ token: TEAM_A_TOKEN });
  await admin.submit(['team-b-db.service']);
  await team.submit(['team-a-web.service'], 'launched');
  await refused(t, team.destroy(['team-b-db.service']));
  await admin.list(); // a read: not audited
  await r.units({ token: ADMIN_TOKEN }).destroy(['team-b-db.service']);

  const lines = await auditLines(r.auditFile);
  t.deepEqual(
    lines.map((l) => [l['identity'], l['method'], l['units'], l['result']]),
    [
      ['CN=flotilla-test-client', 'Units.SubmitUnits', ['team-b-db.service'], 'OK'],
      ['token:ci-team-a', 'Units.SubmitUnits', ['team-a-web.service'], 'OK'],
      ['token:ci-team-a', 'Units.DestroyUnits', ['team-b-db.service'], 'PERMISSION_DENIED'],
      ['token:root', 'Units.DestroyUnits', ['team-b-db.service'], 'OK'],
    ],
  );
  for (const l of lines) {
    t.true(!Number.isNaN(Date.parse(String(l['time']))), 'has a time');
    if (l['result'] === 'OK') t.regex(String(l['revision']), /^\d+$/, 'has the revision');
  }
  const text = await readFile(r.auditFile, 'utf8');
  t.false(text.includes(TEAM_A_TOKEN) || text.includes(ADMIN_TOKEN), 'no token');
  t.false(text.includes('ExecStart'), 'no unit file text');
});

test('a policy with tokens is refused on a plaintext API that does not listen on loopback', async (t) => {
  const store = openStore({ endpoints: etcd().endpoint, prefix: uniquePrefix(t.title) });
  t.teardown(() => store.close());
  const err = await t.throwsAsync(
    startApiServer({
      store,
      listen: '0.0.0.0:0',
      logger: quietLogger,
      policy: parsePolicy('policy.json', POLICY),
    }),
  );
  t.regex(err.message, /tokens.*plaintext.*TLS.*loopback/);
  // On loopback it serves, and the token works.
  const api = await startApiServer({
    store,
    listen: '127.0.0.1:0',
    logger: quietLogger,
    policy: parsePolicy('policy.json', POLICY),
  });
  t.teardown(() => api.close());
  const c = new UnitsClient(api.address, credentials.createInsecure());
  t.teardown(() => c.close());
  const md = new Metadata();
  md.set('authorization', `Bearer ${TEAM_A_TOKEN}`);
  const res = await new Promise<unknown>((resolve, reject) =>
    c.getUnit({ name: 'team-a-x.service' }, md, (e, v) => (e === null ? resolve(v) : reject(e))),
  ).catch((e: ServiceError) => e);
  t.is((res as ServiceError).code, status.NOT_FOUND, 'authorized, then not found');
});

test('flotctl sends --token and FLOTCTL_TOKEN, says a refusal in one line, and waits on what the token may read', async (t) => {
  const store = openStore({ endpoints: etcd().endpoint, prefix: uniquePrefix(t.title) });
  t.teardown(() => store.close());
  const api = await startApiServer({
    store,
    listen: '127.0.0.1:0',
    logger: quietLogger,
    policy: parsePolicy('policy.json', POLICY),
  });
  t.teardown(() => api.close());
  const dir = await unitDir(t, {
    'team-a-1.service': unitText(),
    'team-a-2.service': unitText(),
    'team-b-1.service': unitText(),
  });
  const as = (token: string, args: string[], env: Record<string, string> = {}) =>
    flotctl(['--endpoint', api.address, ...(token === '' ? [] : ['--token', token]), ...args], {
      env,
    });
  const root = await as(ADMIN_TOKEN, ['submit', join(dir, 'team-b-1.service')]);
  t.is(root.code, 0, root.stderr);
  const submit = await as(
    '',
    ['submit', join(dir, 'team-a-1.service'), join(dir, 'team-a-2.service')],
    {
      FLOTCTL_TOKEN: TEAM_A_TOKEN,
    },
  );
  t.is(submit.code, 0, submit.stderr);
  const listed = await as(TEAM_A_TOKEN, ['list-unit-files', '--no-legend']);
  t.is(listed.code, 0, listed.stderr);
  t.deepEqual(
    listed.stdout
      .split('\n')
      .filter((l) => l !== '')
      .map((l) => l.split(/\s+/)[0]),
    ['team-a-1.service', 'team-a-2.service'],
    'only what the token may read',
  );
  // destroy waits until both are gone, watching team-a-* (all it may read)
  const destroyed = await as(TEAM_A_TOKEN, ['destroy', 'team-a-1.service', 'team-a-2.service']);
  t.is(destroyed.code, 0, destroyed.stderr);

  const denied = await as(TEAM_A_TOKEN, ['destroy', 'team-b-1.service']);
  t.is(denied.code, 1);
  t.regex(
    denied.stderr,
    /^token:ci-team-a \(roles team-a\) may not (read|destroy) .*team-b-1\.service.*\n$/,
  );
  const list = await as(TEAM_A_TOKEN, ['list-units', 'team-a-*']);
  t.is(list.code, 0, list.stderr);

  const plaintext = await flotctl([
    '--endpoint',
    '10.255.255.1:4700',
    '--token',
    'x',
    'list-units',
  ]);
  t.is(plaintext.code, 2);
  t.regex(plaintext.stderr, /--token would cross the network in plaintext/);
});

test('a method the verbs table does not map is for admins only, never silently allowed', (t) => {
  const auth = new Authorizer(parsePolicy('policy.json', POLICY));
  const team = { identity: 'token:ci-team-a', roles: ['team-a'] };
  const err = t.throws(() => auth.authorize(team, 'Units.SomeNewMethod', { names: ['team-a-1'] }));
  t.regex(err.message, /token:ci-team-a .* may not admin \(Units\.SomeNewMethod\)/);
  t.notThrows(() =>
    auth.authorize({ identity: 'token:root', roles: ['admin'] }, 'Units.SomeNewMethod', {}),
  );
  t.true(ruleOf('Units.SomeNewMethod').write, 'and audited as a write');
});

test('a policy file with a mistake is refused, naming the file and what to fix', (t) => {
  const bad = (policy: unknown) => t.throws(() => parsePolicy('p.json', JSON.stringify(policy)));
  t.regex(
    bad({ roles: { r: [{ verbs: ['launch'] }] }, identities: [] }).message,
    /p\.json: roles\.r\[0\]\.verbs: unknown verb "launch"/,
  );
  t.regex(
    bad({ roles: {}, identities: [{ subject: { CN: 'x' }, roles: ['nope'] }] }).message,
    /identities\[0\]\.roles: no role "nope"/,
  );
  t.regex(
    bad({ roles: {}, identities: [{ name: 'a', tokenSha256: 'plaintext-token', roles: [] }] })
      .message,
    /tokenSha256: expected 64 lowercase hex digits/,
  );
  t.regex(t.throws(() => parsePolicy('p.json', '{')).message, /p\.json: not valid JSON/);
});
