/**
 * fleet's answers to what fleetctl and fleet's other clients may send wrong (api/units.go's
 * 415, 400, 409, "cannot activate template"; fleet's error bodies), replacing a unit, paging
 * through a listing by opaque tokens, and the auth policy applied to fleet's routes as to the
 * gRPC API, over the unix socket and over the scheduler's HTTP listener (with a real etcd).
 */
import test from 'ava';
import { pino } from 'pino';
import { hashToken, parsePolicy } from '../../scheduler/gate/auth-policy.js';
import { startHttpServer } from '../../scheduler/http/server.js';
import { codecs } from '../../store/index.js';
import { etcdForFile } from '../../testkit/index.js';
import { fingerprint } from '../cli/cli-kit.js';
import { fleetClient, fleetOnCore, type Answer, type FleetUnit } from './fleet-kit.js';

const server = etcdForFile(test);

const OPTIONS = [
  { section: 'Unit', name: 'Description', value: 'Hi' },
  { section: 'Service', name: 'ExecStart', value: '/bin/sleep 100' },
];
const errorOf = (json: unknown): { code: number; message: string } =>
  (json as { error: { code: number; message: string } }).error;

test("bad requests get fleet's status codes and error bodies, and write nothing", async (t) => {
  const { store, fleet } = await fleetOnCore(t, server());
  t.is((await fleet('PUT', 'units/a.service', { body: { options: OPTIONS } })).status, 201);
  const before = await fingerprint(store);
  const cases: [string, Promise<Answer>, number, RegExp][] = [
    [
      'text/plain',
      fleet('PUT', 'units/b.service', {
        raw: JSON.stringify({ options: OPTIONS }),
        headers: { 'Content-Type': 'text/plain' },
      }),
      415,
      /application\/json/,
    ],
    ['no Content-Type', fleet('PUT', 'units/b.service', { raw: '{}' }), 415, /Content-Type/],
    [
      'not JSON',
      fleet('PUT', 'units/b.service', {
        raw: '{"name":',
        headers: { 'Content-Type': 'application/json' },
      }),
      400,
      /unable to decode body/,
    ],
    [
      'other name',
      fleet('PUT', 'units/b.service', { body: { name: 'c.service', options: OPTIONS } }),
      400,
      /differs from unit name/,
    ],
    ['bad name', fleet('PUT', 'units/b.nothing', { body: { options: OPTIONS } }), 400, /unit type/],
    [
      'new, no options',
      fleet('PUT', 'units/b.service', { body: { desiredState: 'launched' } }),
      409,
      /options field empty/,
    ],
    [
      'existing, no state',
      fleet('PUT', 'units/a.service', { body: { name: 'a.service' } }),
      409,
      /must provide DesiredState/,
    ],
    [
      'bad state',
      fleet('PUT', 'units/a.service', { body: { desiredState: 'running' } }),
      400,
      /not one of inactive, loaded, launched/,
    ],
    [
      'options type',
      fleet('PUT', 'units/b.service', { body: { options: 'x' } }),
      400,
      /options is not a list/,
    ],
    [
      'injected section',
      fleet('PUT', 'units/b.service', {
        body: {
          options: [{ section: 'Unit', name: 'Description', value: 'x\n[X-Fleet]\nGlobal=true' }],
        },
      }),
      400,
      /does not read back/,
    ],
    [
      'bad [X-Fleet]',
      fleet('PUT', 'units/b.service', {
        body: {
          options: [
            ...OPTIONS,
            { section: 'X-Fleet', name: 'MachineID', value: 'm1' },
            { section: 'X-Fleet', name: 'Conflicts', value: 'x*' },
          ],
        },
      }),
      400,
      /MachineID/,
    ],
    [
      'template started',
      fleet('PUT', 'units/t%40.service', { body: { options: OPTIONS, desiredState: 'launched' } }),
      400,
      /cannot activate template/,
    ],
    ['method', fleet('POST', 'units/a.service'), 405, /only GET, PUT and DELETE/],
    ['route', fleet('GET', 'nothing'), 404, /no fleet API route/],
    [
      'page token',
      fleet('GET', 'units', { query: { nextPageToken: 'bm9wZQ' } }),
      400,
      /nextPageToken/,
    ],
    ['unknown state', fleet('GET', 'state/zz.service'), 404, /unit state does not exist/],
    ['unknown delete', fleet('DELETE', 'units/zz.service'), 404, /unit does not exist/],
  ];
  for (const [what, answer, status, message] of cases) {
    const a = await answer;
    t.is(a.status, status, what);
    t.is(a.contentType, 'application/json', what);
    t.is(errorOf(a.json).code, status, what);
    t.regex(errorOf(a.json).message, message, what);
  }
  t.deepEqual(await fingerprint(store), before);
});

test('new options replace a unit (201, inactive unless the body says otherwise); the same options only set its state', async (t) => {
  const { store, fleet } = await fleetOnCore(t, server());
  t.is(
    (await fleet('PUT', 'units/a.service', { body: { options: OPTIONS, desiredState: 'loaded' } }))
      .status,
    201,
  );
  t.like((await fleet('GET', 'units/a.service')).json, { desiredState: 'loaded' });
  // The same options and a state: 204, the file untouched.
  const before = await store.getRecord(codecs.unit, store.keys.unit('a.service'));
  t.is(
    (
      await fleet('PUT', 'units/a.service', {
        body: { options: OPTIONS, desiredState: 'launched' },
      })
    ).status,
    204,
  );
  const after = await store.getRecord(codecs.unit, store.keys.unit('a.service'));
  t.is(after?.value.file, before?.value.file);
  t.is(after?.value.desiredState, 'launched');
  // Other options: replaced, and inactive (fleet's CreateUnit), as `submit --replace` expects.
  const changed = [{ section: 'Service', name: 'ExecStart', value: '/bin/sleep 200' }];
  t.is((await fleet('PUT', 'units/a.service', { body: { options: changed } })).status, 201);
  const replaced = (await fleet('GET', 'units/a.service')).json as FleetUnit;
  t.deepEqual(replaced.options, changed);
  t.is(replaced.desiredState, 'inactive');
});

test('listings page by opaque tokens: every unit once, in name order, then no token', async (t) => {
  const { fleet } = await fleetOnCore(t, server(), { pageEntries: 7 });
  const names = Array.from({ length: 23 }, (_v, i) => `p${String(i).padStart(2, '0')}.service`);
  for (const name of names) {
    t.is((await fleet('PUT', `units/${name}`, { body: { options: OPTIONS } })).status, 201);
  }
  const seen: string[] = [];
  let token: string | undefined;
  let pages = 0;
  do {
    const a = await fleet(
      'GET',
      'units',
      token === undefined ? {} : { query: { nextPageToken: token } },
    );
    t.is(a.status, 200);
    const page = a.json as { units: FleetUnit[]; nextPageToken?: string };
    t.true(page.units.length <= 7);
    seen.push(...page.units.map((u) => u.name));
    token = page.nextPageToken;
    pages += 1;
    // A token is for its own listing only.
    if (token !== undefined) {
      t.is((await fleet('GET', 'machines', { query: { nextPageToken: token } })).status, 400);
    }
  } while (token !== undefined && pages < 10);
  t.deepEqual(seen, names);
  t.is(pages, 4);
  // An empty listing is a page without a token.
  t.deepEqual((await fleet('GET', 'state')).json, { states: [] });
});

test("an auth policy judges fleet's routes as it judges the gRPC API: over the socket and the HTTP listener", async (t) => {
  const policy = parsePolicy(
    'policy.json',
    JSON.stringify({
      roles: {
        viewer: [{ verbs: ['read'], units: ['*'] }],
        // fleet's units run on the host as root: capabilities a role must be granted.
        deployer: [
          {
            verbs: ['read', 'submit', 'start-stop', 'destroy'],
            capabilities: ['host-process', 'root'],
            units: ['web-*'],
          },
        ],
        nocaps: [{ verbs: ['read', 'submit', 'start-stop', 'destroy'], units: ['web-*'] }],
      },
      identities: [
        { name: 'viewer', tokenSha256: hashToken('view-token'), roles: ['viewer'] },
        { name: 'ci', tokenSha256: hashToken('ci-token'), roles: ['deployer'] },
        { name: 'team', tokenSha256: hashToken('team-token'), roles: ['nocaps'] },
      ],
    }),
  );
  const { fleet, core } = await fleetOnCore(t, server(), { policy });
  const as = (token: string) => ({ headers: { Authorization: `Bearer ${token}` } });
  // Over the socket: the token decides.
  const put = (name: string, token: string) =>
    fleet('PUT', `units/${name}`, { body: { options: OPTIONS }, ...as(token) });
  t.is((await put('web-1.service', 'ci-token')).status, 201);
  const denied = await put('db.service', 'ci-token');
  t.is(denied.status, 403);
  t.regex(errorOf(denied.json).message, /token:ci .*may not submit/);
  t.is((await put('web-2.service', 'view-token')).status, 403);
  const hostUnit = await put('web-3.service', 'team-token');
  t.is(hostUnit.status, 403, 'a unit file is admitted by its contents, as over gRPC');
  t.regex(errorOf(hostUnit.json).message, /host-process/);
  t.is((await fleet('GET', 'units', as('view-token'))).status, 200);
  t.is((await fleet('GET', 'units', as('wrong'))).status, 401);
  t.is((await fleet('GET', 'units')).status, 403); // anonymous has no role

  // Over the HTTP listener, with fleet's routes in its table.
  const http = await startHttpServer({
    listen: '127.0.0.1:0',
    core,
    logger: pino({ level: 'silent' }),
  });
  t.teardown(() => http.close());
  const [host, port] = [
    http.address.slice(0, http.address.lastIndexOf(':')),
    Number(http.address.split(':').pop()),
  ];
  const overHttp = fleetClient({ host, port });
  const list = await overHttp('GET', 'units', as('ci-token'));
  t.is(list.status, 200);
  t.deepEqual(
    (list.json as { units: FleetUnit[] }).units.map((u) => u.name),
    ['web-1.service'],
  );
  t.is((await overHttp('DELETE', 'units/web-1.service', as('view-token'))).status, 403);
  t.is((await overHttp('DELETE', 'units/web-1.service', as('ci-token'))).status, 204);
  t.is((await overHttp('GET', 'units/web-1.service', as('ci-token'))).status, 404);
});

test("a started Global unit that no machine reports yet has a state row, so fleetctl's start never dereferences a 404", async (t) => {
  const { fleet } = await fleetOnCore(t, server());
  const options = [...OPTIONS, { section: 'X-Fleet', name: 'Global', value: 'true' }];
  t.is((await fleet('PUT', 'units/g.service', { body: { options } })).status, 201);
  t.is((await fleet('GET', 'state/g.service')).status, 404); // not started: no row, as in fleet
  t.is((await fleet('PUT', 'units/g.service', { body: { desiredState: 'launched' } })).status, 204);
  const row = await fleet('GET', 'state/g.service');
  t.is(row.status, 200);
  t.deepEqual(Object.keys(row.json as object), ['name', 'hash']);
  t.regex((row.json as { hash: string }).hash, /^[0-9a-f]{40}$/);
});
