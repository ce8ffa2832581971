/**
 * Admission of unit contents by role (issue 30), against a real API server and a real etcd,
 * with the three tokens: viewer (read on web@*), webteam (read, submit, start-stop,
 * destroy, scale on web@*) and admin. A unit file's host paths, root, `+` lines and host
 * programs are capabilities; its scheduling keys name only units the caller has rights on;
 * what a plan or status shows of other units is narrowed. A refusal writes nothing.
 */
import { Client, credentials, Metadata, status, type ServiceError } from '@grpc/grpc-js';
import { HealthService, ServingStatus } from '../../daemon/grpc-health.js';
import test, { type ExecutionContext } from 'ava';
import { Placement } from '../../proto/flotilla/v1/records.js';
import {
  PlanRequest,
  type PlanResponse,
  type SubmitUnitsResponse,
  UnitsClient,
} from '../../proto/flotilla/v1/units.js';
import { hashToken, parsePolicy } from '../../scheduler/gate/auth-policy.js';
import { ruleOf } from '../../scheduler/gate/auth.js';
import { startApiServer } from '../../scheduler/api/server.js';
import { codecs, openStore, type Store } from '../../store/index.js';
import {
  etcdForFile,
  makeMachine,
  reflectedServices,
  storedInstances,
  uniquePrefix,
  unitText,
} from '../../testkit/index.js';
import { CALL_TIMEOUT_MS, fingerprint, quietLogger } from '../api/api-kit.js';

const etcd = etcdForFile(test);

const TOKENS = {
  viewer: 'viewer-token-0123456789',
  webteam: 'webteam-token-0123456789',
  admin: 'admin-token-0123456789',
};
type Who = keyof typeof TOKENS;

const POLICY = JSON.stringify({
  roles: {
    viewer: [{ verbs: ['read'], units: ['web@*'] }],
    webteam: [{ verbs: ['read', 'submit', 'start-stop', 'destroy', 'scale'], units: ['web@*'] }],
    admin: [{ verbs: ['admin'] }],
  },
  identities: Object.entries(TOKENS).map(([name, token]) => ({
    name,
    tokenSha256: hashToken(token),
    roles: [name],
  })),
});

/** An image unit webteam may run: a pinned-as-given image, a non-root user. */
function imageUnit(opts: { container?: string[]; service?: string[]; xfleet?: string[] } = {}) {
  return [
    '[Unit]',
    'Description=web',
    '[Service]',
    ...(opts.service ?? []),
    '[Container]',
    'Image=registry.invalid/web:1',
    'Pull=never',
    'User=1000',
    ...(opts.container ?? []),
    ...(opts.xfleet === undefined ? [] : ['[X-Fleet]', ...opts.xfleet]),
    '',
  ].join('\n');
}

interface Rig {
  readonly store: Store;
  readonly address: string;
  submit(
    who: Who,
    name: string,
    contents: string,
    desiredState?: string,
  ): Promise<SubmitUnitsResponse>;
  start(who: Who, names: string[]): Promise<unknown>;
  scale(who: Who, template: string, count: number): Promise<unknown>;
  plan(who: Who, names: string[]): Promise<PlanResponse>;
  status(who: Who, name: string): Promise<{ summary: string; reasons: string[] }>;
  /** SummarizeInstances of `template`'s instances 1..`count`: how many run. */
  summarize(who: Who, template: string, count: number): Promise<{ wanted: number }>;
}

async function rig(t: ExecutionContext): Promise<Rig> {
  const store = openStore({ endpoints: etcd().endpoint, prefix: uniquePrefix(t.title) });
  const server = await startApiServer({
    store,
    listen: '127.0.0.1:0',
    logger: quietLogger,
    policy: parsePolicy('policy.json', POLICY),
  });
  const client = new UnitsClient(server.address, credentials.createInsecure());
  t.teardown(async () => {
    client.close();
    await server.close();
    store.close();
  });
  const call = <Req, Res>(
    who: Who,
    fn: (
      r: Req,
      m: Metadata,
      o: { deadline: number },
      cb: (e: ServiceError | null, r: Res) => void,
    ) => unknown,
    req: Req,
  ): Promise<Res> =>
    new Promise((resolve, reject) => {
      const md = new Metadata();
      md.set('authorization', `Bearer ${TOKENS[who]}`);
      fn.call(client, req, md, { deadline: Date.now() + CALL_TIMEOUT_MS }, (e, r) =>
        e === null ? resolve(r) : reject(e),
      );
    });
  return {
    store,
    address: server.address,
    submit: (who, name, contents, desiredState = '') =>
      call(who, client.submitUnits, {
        files: [{ name, contents }],
        replace: false,
        desiredState,
        allowPending: true,
      }),
    start: (who, names) =>
      call(who, client.setDesiredState, { names, desiredState: 'launched', allowPending: true }),
    scale: (who, template, count) =>
      call(who, client.scale, { template, count, allowPending: true, dryRun: false }),
    plan: (who, names) => call(who, client.plan, { ...PlanRequest.create(), names }),
    summarize: (who, template, count) =>
      call(who, client.summarizeInstances, {
        template,
        sinceRevision: 0n,
        instances: [{ first: 1, last: count }],
        started: [],
        destroyed: [],
      }),
    status: async (who, name) => {
      const s = await call(who, client.getUnit, { name });
      return {
        summary: s.unscheduled?.summary ?? '',
        reasons: (s.unscheduled?.reasons ?? []).map((r) => r.reason),
      };
    },
  };
}

/** Awaits a refusal: PERMISSION_DENIED whose text matches `why`, and nothing written. */
async function refused(
  t: ExecutionContext,
  r: Rig,
  p: Promise<unknown>,
  why: RegExp,
): Promise<void> {
  const before = await fingerprint(r.store);
  const err = (await t.throwsAsync(p)) as ServiceError;
  t.is(err.code, status.PERMISSION_DENIED, err.details);
  t.regex(err.details, why);
  t.deepEqual(await fingerprint(r.store), before, 'a refusal writes nothing');
}

test('webteam may submit and start an image unit as a non-root user on web@*', async (t) => {
  const r = await rig(t);
  const res = await r.submit('webteam', 'web@1.service', imageUnit(), 'launched');
  t.deepEqual(res.created, ['web@1.service']);
});

test('Volume=/:/host is refused for webteam, naming key, line and capability; admin may', async (t) => {
  const r = await rig(t);
  const file = imageUnit({ container: ['Volume=/:/host'] });
  await refused(
    t,
    r,
    r.submit('webteam', 'web@vol.service', file, 'launched'),
    /^token:webteam \(roles webteam\) may not submit web@vol\.service: \[Container\] Volume=\/:\/host \(line 8\) needs capability host-paths/,
  );
  const ok = await r.submit('admin', 'web@vol.service', file);
  t.deepEqual(ok.created, ['web@vol.service']);
  // What admin submitted, webteam cannot start: it would run with rights webteam lacks.
  await refused(
    t,
    r,
    r.start('webteam', ['web@vol.service']),
    /may not start web@vol\.service: .*host-paths/,
  );
});

test('a unit without an image (host programs, as root) is refused for webteam', async (t) => {
  const r = await rig(t);
  const hostetc = unitText({ exec: '/bin/cat /etc/shadow', service: { User: 'nobody' } });
  await refused(
    t,
    r,
    r.submit('webteam', 'web@hostetc.service', hostetc),
    /web@hostetc\.service: \[Container\] Image= \(none: the unit runs host programs\) needs capability host-process/,
  );
  await refused(
    t,
    r,
    r.submit('webteam', 'web@root.service', imageUnit({ container: ['User=root'] })),
    /User=root \(line 8\) needs capability root/,
  );
});

test('EnvironmentFile=, RootDirectory= with Global=true and the + prefix are refused for webteam', async (t) => {
  const r = await rig(t);
  await refused(
    t,
    r,
    r.submit('webteam', 'web@env.service', imageUnit({ service: ['EnvironmentFile=/etc/shadow'] })),
    /\[Service\] EnvironmentFile=\/etc\/shadow \(line 4\) needs capability host-paths/,
  );
  await refused(
    t,
    r,
    r.submit(
      'webteam',
      'web@all.service',
      unitText({ service: { User: 'nobody', RootDirectory: '/' }, xfleet: { Global: 'true' } }),
    ),
    /\[Service\] RootDirectory=\/ \(line 7\) needs capability host-paths/,
  );
  await refused(
    t,
    r,
    r.submit(
      'webteam',
      'web@plus.service',
      imageUnit({ service: ['ExecStartPre=+/bin/touch /x'] }),
    ),
    /\[Service\] ExecStartPre=\+\/bin\/touch \(line 4\) needs capability privileged-exec/,
  );
});

test("Linux capabilities beyond Docker's default set need added-capabilities; CAP_NET_BIND_SERVICE does not", async (t) => {
  const r = await rig(t);
  const admin = imageUnit({ service: ['AmbientCapabilities=CAP_NET_BIND_SERVICE CAP_SYS_ADMIN'] });
  await refused(
    t,
    r,
    r.submit('webteam', 'web@caps.service', admin),
    /\[Service\] AmbientCapabilities=CAP_SYS_ADMIN \(line 4\) needs capability added-capabilities/,
  );
  await refused(
    t,
    r,
    r.submit(
      'webteam',
      'web@bound.service',
      imageUnit({ service: ['CapabilityBoundingSet=~CAP_CHOWN'] }),
    ),
    /CapabilityBoundingSet=CAP_DAC_READ_SEARCH CAP_LINUX_IMMUTABLE CAP_NET_BROADCAST \(and \d+ more\) \(line 4\) needs capability added-capabilities/,
  );
  const ok = await r.submit(
    'webteam',
    'web@low.service',
    imageUnit({ service: ['AmbientCapabilities=CAP_NET_BIND_SERVICE CAP_CHOWN'] }),
  );
  t.deepEqual(ok.created, ['web@low.service']);
  t.deepEqual((await r.submit('admin', 'web@caps.service', admin)).created, ['web@caps.service']);
});

test('Replaces=d* is refused for webteam; Conflicts= and MachineOf= within web@* pass', async (t) => {
  const r = await rig(t);
  await refused(
    t,
    r,
    r.submit('webteam', 'web@9.service', imageUnit({ xfleet: ['Replaces=d*'] }), 'launched'),
    /\[X-Fleet\] Replaces=d\* \(line 9\) may name units outside its rights \(it needs start-stop/,
  );
  await refused(
    t,
    r,
    r.submit('webteam', 'web@8.service', imageUnit({ xfleet: ['MachineOf=db.service'] })),
    /MachineOf=db\.service .* needs read/,
  );
  const ok = await r.submit(
    'webteam',
    'web@7.service',
    imageUnit({ xfleet: ['Conflicts=web@7*', 'MachineOf=web@db.service'] }),
  );
  t.deepEqual(ok.created, ['web@7.service']);
});

test('a scale up of a template whose file needs a capability is refused for webteam', async (t) => {
  const r = await rig(t);
  await r.submit('admin', 'web@.service', imageUnit({ container: ['Volume=/srv:/srv'] }));
  await refused(t, r, r.scale('webteam', 'web', 2), /may not scale web@\.service: .*host-paths/);
});

test('scale authorizes the canonical name it acts on: "web" is web@.service', async (t) => {
  const r = await rig(t);
  await r.submit('admin', 'web@.service', imageUnit());
  await r.scale('webteam', 'web', 2); // was PERMISSION_DENIED: "web" is not in web@*
  t.is(await storedInstances(r.store, 'web@.service'), 2, 'two instances of the template');
  // A grant on the literal name "db" is no grant on the template db@.service it scales.
  t.deepEqual(ruleOf('Units.Scale').units?.({ template: 'db', count: 1 }), ['db@.service']);
});

test('counting the instances of a template needs read on all of them: the viewer of web@* counts web@.service, not db@.service', async (t) => {
  const r = await rig(t);
  await r.submit('admin', 'web@.service', imageUnit());
  await r.submit('admin', 'db@.service', imageUnit());
  await r.scale('admin', 'web', 2);
  t.is((await r.summarize('viewer', 'web', 2)).wanted, 2);
  await refused(
    t,
    r,
    r.summarize('viewer', 'db@.service', 2),
    /may not read \(Units\.SummarizeInstances\): no role of it grants read on db@\*\.service/,
  );
  t.deepEqual(ruleOf('Units.SummarizeInstances').units?.({ template: 'db' }), ['db@*.service']);
});

test('plan and status show the viewer of web@* no name of db.service', async (t) => {
  const r = await rig(t);
  await r.store.putRecord(codecs.machine, r.store.keys.machine('m1'), makeMachine({ id: 'm1' }));
  await r.submit('admin', 'db.service', unitText(), 'launched');
  await r.store.putRecord(
    codecs.placement,
    r.store.keys.placement('m1', 'db.service'),
    Placement.fromPartial({ unit: 'db.service', machine: 'm1' }),
  );
  // Units without an image: makeMachine's machines run no images.
  await r.submit('admin', 'web@.service', unitText({ xfleet: { Replaces: 'db.service' } }));
  const asAdmin = await r.plan('admin', ['web@1.service']);
  t.deepEqual(asAdmin.units[0]?.displaces, ['db.service'], 'admin sees what is displaced');
  const asViewer = await r.plan('viewer', ['web@1.service']);
  t.deepEqual(
    asViewer.units.map((u) => [u.name, u.machine, u.displaces]),
    [['web@1.service', 'm1', []]],
  );
  t.false(
    JSON.stringify(asViewer, (_k, v: unknown) => (typeof v === 'bigint' ? String(v) : v)).includes(
      'db.service',
    ),
  );

  // A reason naming db.service reads "another unit" for the viewer.
  await r.store.putRecord(codecs.unscheduled, r.store.keys.unscheduled('web@2.service'), {
    unit: 'web@2.service',
    machines: 1,
    reasons: [{ reason: 'conflict with db.service', machines: 1 }],
    summary: '0/1 machines: 1 conflict with db.service',
    epoch: 1n,
    waiting: 0,
    waitingRanges: [],
  });
  await r.submit('admin', 'web@2.service', imageUnit(), 'launched');
  t.deepEqual(await r.status('viewer', 'web@2.service'), {
    summary: '0/1 machines: 1 conflict with another unit',
    reasons: ['conflict with another unit'],
  });
  t.deepEqual((await r.status('admin', 'web@2.service')).reasons, ['conflict with db.service']);
});

test('reflection is refused anonymously on a policy-protected API; health status stays open', async (t) => {
  const r = await rig(t);
  const creds = credentials.createInsecure();
  const anonymous = (await t.throwsAsync(reflectedServices(r.address, creds))) as ServiceError;
  t.is(anonymous.code, status.PERMISSION_DENIED, anonymous.details);
  t.regex(anonymous.details, /anonymous \(no roles\) may not read \(Reflection\./);
  const md = new Metadata();
  md.set('authorization', `Bearer ${TOKENS.viewer}`);
  t.true((await reflectedServices(r.address, creds, 20_000, md)).includes('flotilla.v1.Units'));

  const client = new Client(r.address, creds);
  t.teardown(() => client.close());
  const check = (service: string) =>
    new Promise<{ status: ServingStatus }>((resolve, reject) => {
      client.makeUnaryRequest(
        HealthService.check.path,
        HealthService.check.requestSerialize,
        HealthService.check.responseDeserialize,
        { service },
        new Metadata(),
        { deadline: Date.now() + CALL_TIMEOUT_MS },
        (e, res) =>
          e === null || e === undefined ? resolve(res as { status: ServingStatus }) : reject(e),
      );
    });
  t.is((await check('')).status, ServingStatus.SERVING);
  const unknown = (await t.throwsAsync(check('flotilla.v1.Nope'))) as ServiceError;
  t.is(unknown.code, status.NOT_FOUND);
  t.is(unknown.details, 'unknown service', 'no list of what the API serves');
});
