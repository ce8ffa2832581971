/**
 * Secrets through the API (issue 30), against a real etcd and a real API server: a secret is
 * sealed before it reaches etcd (AES-256-GCM, the name bound in), never returned by any call,
 * and handled only by the roles whose grants cover its name; a unit may name only secrets
 * its submitter holds; deleting a secret a unit names is refused unless forced.
 */
import { credentials, Metadata, status, type ServiceError } from '@grpc/grpc-js';
import test, { type ExecutionContext } from 'ava';
import { openSecret, parseSecretsKey, SECRET_MAX_BYTES } from '../../lib/secret-box.js';
import { SecretsClient } from '../../proto/flotilla/v1/secrets.js';
import { UnitsClient } from '../../proto/flotilla/v1/units.js';
import { hashToken, parsePolicy } from '../../scheduler/gate/auth-policy.js';
import { startApiServer } from '../../scheduler/api/server.js';
import { codecs, openStore, type Store } from '../../store/index.js';
import { etcdForFile, uniquePrefix } from '../../testkit/index.js';
import { CALL_TIMEOUT_MS, quietLogger } from './api-kit.js';

const etcd = etcdForFile(test);
const KEY = parseSecretsKey(Buffer.from('11'.repeat(32)), 'test.key');
const VALUE = 's3cr3t-db-pass';
const TOKENS = { webteam: 'webteam-token-0123456789', admin: 'admin-token-0123456789' };

const POLICY = JSON.stringify({
  roles: {
    webteam: [{ verbs: ['read', 'submit', 'start-stop'], units: ['web@*'], secrets: ['web-*'] }],
    admin: [{ verbs: ['admin'] }],
  },
  identities: Object.entries(TOKENS).map(([name, token]) => ({
    name,
    tokenSha256: hashToken(token),
    roles: [name],
  })),
});

type Who = keyof typeof TOKENS | 'nobody';

async function rig(t: ExecutionContext, opts: { policy?: boolean; key?: boolean } = {}) {
  const store: Store = openStore({ endpoints: etcd().endpoint, prefix: uniquePrefix(t.title) });
  const server = await startApiServer({
    store,
    listen: '127.0.0.1:0',
    logger: quietLogger,
    ...(opts.policy === true ? { policy: parsePolicy('policy.json', POLICY) } : {}),
    ...(opts.key === false ? {} : { secretsKey: KEY }),
  });
  const secrets = new SecretsClient(server.address, credentials.createInsecure());
  const units = new UnitsClient(server.address, credentials.createInsecure());
  t.teardown(async () => {
    secrets.close();
    units.close();
    await server.close();
    store.close();
  });
  const md = (who: Who): Metadata => {
    const m = new Metadata();
    if (who !== 'nobody') m.set('authorization', `Bearer ${TOKENS[who]}`);
    return m;
  };
  const call = <Req, Res>(
    client: object,
    fn: (
      r: Req,
      m: Metadata,
      o: { deadline: number },
      cb: (e: ServiceError | null, r: Res) => void,
    ) => unknown,
    who: Who,
    req: Req,
  ): Promise<Res> =>
    new Promise((resolve, reject) => {
      fn.call(client, req, md(who), { deadline: Date.now() + CALL_TIMEOUT_MS }, (e, r) =>
        e === null ? resolve(r) : reject(e),
      );
    });
  return {
    store,
    create: (name: string, value: string, who: Who = 'admin', replace = false) =>
      call(secrets, secrets.createSecret, who, { name, value: Buffer.from(value), replace }),
    list: (who: Who = 'admin') => call(secrets, secrets.listSecrets, who, {}),
    remove: (name: string, who: Who = 'admin', force = false) =>
      call(secrets, secrets.deleteSecret, who, { name, force }),
    submit: (name: string, contents: string, who: Who = 'admin') =>
      call(units, units.submitUnits, who, {
        files: [{ name, contents }],
        replace: false,
        desiredState: '',
        allowPending: true,
      }),
  };
}

const unitNaming = (secret: string): string =>
  `[Unit]\nDescription=uses ${secret}\n[Service]\nSecret=${secret}\n[Container]\nImage=registry.invalid/web:1\nPull=never\nUser=1000\n`;

async function refusal(t: ExecutionContext, p: Promise<unknown>): Promise<ServiceError> {
  return (await t.throwsAsync(p)) as ServiceError;
}

test('a secret is sealed in etcd, opens only under its own name, and no answer holds it', async (t) => {
  const r = await rig(t);
  const created = await r.create('web-db', VALUE);
  t.like(created, { name: 'web-db', size: VALUE.length, keyId: KEY.id });
  const raw = await r.store.get(r.store.keys.secret('web-db'));
  t.false(raw?.value.toString('utf8').includes(VALUE), 'no plaintext in etcd');
  t.false(raw?.value.toString('utf8').includes(Buffer.from(VALUE).toString('base64')));
  const record = await r.store.getRecord(codecs.secret, r.store.keys.secret('web-db'));
  t.is(
    openSecret(KEY, 'web-db', Buffer.from(record?.value.sealed ?? '', 'base64')).toString(),
    VALUE,
  );
  t.throws(() => openSecret(KEY, 'web-other', Buffer.from(record?.value.sealed ?? '', 'base64')), {
    message: /does not open with key/,
  });
  const listed = await r.list();
  t.deepEqual(
    listed.secrets.map((s) => [s.name, s.size]),
    [['web-db', VALUE.length]],
  );
  t.false(
    JSON.stringify(listed, (_k, v: unknown) => (typeof v === 'bigint' ? 0 : v)).includes(VALUE),
  );
  const again = await refusal(t, r.create('web-db', 'other'));
  t.is(again.code, status.ALREADY_EXISTS);
  t.false(again.details.includes(VALUE));
});

test('a secret over 64 KiB, an empty one, a bad name, or no key file are refused, writing nothing', async (t) => {
  const r = await rig(t);
  const big = await refusal(t, r.create('big', 'x'.repeat(SECRET_MAX_BYTES + 1)));
  t.is(big.code, status.INVALID_ARGUMENT);
  t.regex(big.details, /more than the 65536 a secret may hold/);
  t.is((await refusal(t, r.create('empty', ''))).code, status.INVALID_ARGUMENT);
  t.regex((await refusal(t, r.create('../etc', 'x'))).details, /secret name "\.\.\/etc"/);
  t.is(await r.store.count(r.store.keys.dir('secret')), 0);
  const nokey = await rig(t, { key: false });
  const err = await refusal(t, nokey.create('web-db', VALUE));
  t.is(err.code, status.FAILED_PRECONDITION);
  t.regex(err.details, /--secrets-key-file/);
});

test('deleting a secret a unit names is refused naming the unit, unless forced', async (t) => {
  const r = await rig(t);
  await r.create('web-db', VALUE);
  await r.submit('web@.service', unitNaming('web-db'));
  const listed = await r.list();
  t.deepEqual(listed.secrets[0]?.usedBy, ['web@.service']);
  const err = await refusal(t, r.remove('web-db'));
  t.is(err.code, status.FAILED_PRECONDITION);
  t.regex(err.details, /secret web-db is named by web@\.service: .*--force/);
  t.true((await r.remove('web-db', 'admin', true)).deleted);
  t.is(await r.store.count(r.store.keys.dir('secret')), 0);
});

test('under a policy a role handles and names only the secrets its grants cover', async (t) => {
  const r = await rig(t, { policy: true });
  await r.create('db-pass', VALUE, 'admin');
  await r.create('web-api', 'k', 'webteam');
  t.deepEqual(
    (await r.list('webteam')).secrets.map((s) => s.name),
    ['web-api'],
  );
  t.deepEqual(
    (await r.list('admin')).secrets.map((s) => s.name),
    ['db-pass', 'web-api'],
  );
  t.deepEqual((await r.list('nobody')).secrets, []);
  const create = await refusal(t, r.create('db-pass', 'mine', 'webteam', true));
  t.is(create.code, status.PERMISSION_DENIED);
  t.regex(create.details, /token:webteam .* may not handle secret db-pass/);
  t.is((await refusal(t, r.remove('db-pass', 'webteam', true))).code, status.PERMISSION_DENIED);
  // A unit naming another team's secret would mount it: refused at submit.
  const unit = await refusal(t, r.submit('web@1.service', unitNaming('db-pass'), 'webteam'));
  t.is(unit.code, status.PERMISSION_DENIED);
  t.regex(unit.details, /Secret=db-pass names a secret no role of it holds/);
  await r.submit('web@2.service', unitNaming('web-api'), 'webteam');
});
