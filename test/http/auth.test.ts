/**
 * The listener's door under an auth policy, against a real etcd: no credentials is 401, a
 * viewer reads but its writes are 403, a login sets an HttpOnly SameSite=Strict cookie that
 * reads and (with its CSRF token) writes, a cross-site POST is refused, a listing is
 * narrowed to what the caller may read; a refused request writes nothing.
 */
import test from 'ava';
import { hashToken } from '../../scheduler/gate/auth-policy.js';
import { etcdForFile, unitText } from '../../testkit/index.js';
import { startHttpServer } from '../../scheduler/http/server.js';
import { fingerprint, quietLogger } from '../api/api-kit.js';
import { file, startHttp, type Http } from './http-kit.js';

const etcd = etcdForFile(test);

const VIEWER = 'viewer-secret-0123456789';
const TEAM_A = 'team-a-secret-0123456789';
const ADMIN = 'admin-secret-9876543210';
const WEBTEAM = 'webteam-secret-0123456789';

const POLICY = JSON.stringify({
  roles: {
    viewer: [{ verbs: ['read'], units: ['*'] }],
    'team-a': [
      {
        verbs: ['read', 'submit', 'start-stop', 'destroy'],
        capabilities: ['host-process', 'root'],
        units: ['team-a-*'],
      },
    ],
    webteam: [{ verbs: ['read', 'submit', 'start-stop', 'destroy', 'scale'], units: ['web@*'] }],
    admin: [{ verbs: ['admin'] }],
  },
  identities: [
    { name: 'viewer', tokenSha256: hashToken(VIEWER), roles: ['viewer'] },
    { name: 'team-a', tokenSha256: hashToken(TEAM_A), roles: ['team-a'] },
    { name: 'root', tokenSha256: hashToken(ADMIN), roles: ['admin'] },
    { name: 'webteam', tokenSha256: hashToken(WEBTEAM), roles: ['webteam'] },
  ],
});

async function withUnits(t: Parameters<typeof startHttp>[0]): Promise<Http> {
  const http = await startHttp(t, etcd(), { policy: POLICY });
  const res = await http.fetch('/api/v1/units', {
    token: ADMIN,
    body: { files: [file('team-a-web.service', unitText()), file('other.service', unitText())] },
  });
  t.is(res.status, 200, res.text);
  return http;
}

test('no credentials is 401, a bad token is 401, a viewer reads but may not write (403)', async (t) => {
  const http = await withUnits(t);
  const before = await fingerprint(http.store);
  const anonymous = await http.fetch('/api/v1/units');
  t.is(anonymous.status, 401);
  t.is(anonymous.json.error?.code, 'UNAUTHENTICATED');
  const bad = await http.fetch('/api/v1/units', { token: 'not-a-token' });
  t.is(bad.status, 401);
  t.notRegex(bad.text, /not-a-token/);
  const read = await http.fetch('/api/v1/units/other.service', { token: VIEWER });
  t.is(read.status, 200);
  const write = await http.fetch('/api/v1/units/other.service/start', {
    token: VIEWER,
    method: 'POST',
  });
  t.is(write.status, 403);
  t.is(write.json.error?.code, 'PERMISSION_DENIED');
  t.regex(write.json.error?.message ?? '', /token:viewer .* may not start-stop/);
  t.deepEqual(await fingerprint(http.store), before);
  // health stays public
  t.is((await http.fetch('/healthz')).status, 200);
});

test('a listing is narrowed to the units the caller may read', async (t) => {
  const http = await withUnits(t);
  const res = await http.fetch('/api/v1/units', { token: TEAM_A });
  t.is(res.status, 200, res.text);
  t.deepEqual(
    (res.json['units'] as { unit: { name: string } }[]).map((u) => u.unit.name),
    ['team-a-web.service'],
  );
});

test('a login sets an HttpOnly SameSite=Strict cookie; writes with it need the CSRF token', async (t) => {
  const http = await withUnits(t);
  const wrong = await http.fetch('/api/v1/session', { body: { token: 'nope' } });
  t.is(wrong.status, 401);
  const login = await http.fetch('/api/v1/session', { body: { token: TEAM_A } });
  t.is(login.status, 200, login.text);
  t.is(login.json['identity'], 'token:team-a');
  const setCookie = login.headers.get('set-cookie') ?? '';
  t.regex(setCookie, /^flotilla_session=[A-Za-z0-9_-]{20,};/);
  t.regex(setCookie, /HttpOnly/);
  t.regex(setCookie, /SameSite=Strict/);
  t.notRegex(setCookie, /Secure/); // plain HTTP on loopback; under TLS it is Secure
  const cookie = setCookie.split(';')[0] as string;
  const csrf = String(login.json['csrfToken']);

  const me = await http.fetch('/api/v1/session', { headers: { cookie } });
  t.is(me.json['identity'], 'token:team-a');
  t.deepEqual((me.json['grants'] as { units: string[] }[])[0]?.units, ['team-a-*']);
  const read = await http.fetch('/api/v1/units/team-a-web.service', { headers: { cookie } });
  t.is(read.status, 200);

  const before = await fingerprint(http.store);
  const noToken = await http.fetch('/api/v1/units/team-a-web.service/start', {
    body: { allowPending: true },
    headers: { cookie },
  });
  t.is(noToken.status, 403);
  t.is(noToken.json.error?.code, 'CSRF_TOKEN');
  t.deepEqual(await fingerprint(http.store), before);
  const ok = await http.fetch('/api/v1/units/team-a-web.service/start', {
    body: { allowPending: true },
    headers: { cookie, 'x-csrf-token': csrf, origin: http.url, 'sec-fetch-site': 'same-origin' },
  });
  t.is(ok.status, 200, ok.text);

  const logout = await http.fetch('/api/v1/session', { method: 'DELETE', headers: { cookie } });
  t.is(logout.status, 200);
  const after = await http.fetch('/api/v1/units', { headers: { cookie } });
  t.is(after.status, 401);
});

test('a cross-site POST is refused with 403 and writes nothing, even with a valid cookie', async (t) => {
  const http = await withUnits(t);
  const login = await http.fetch('/api/v1/session', { body: { token: ADMIN } });
  const cookie = (login.headers.get('set-cookie') ?? '').split(';')[0] as string;
  const csrf = String(login.json['csrfToken']);
  const before = await fingerprint(http.store);
  for (const headers of [
    { origin: 'http://evil.example' },
    { 'sec-fetch-site': 'cross-site' },
    { 'sec-fetch-site': 'same-site' },
  ]) {
    const res = await http.fetch('/api/v1/units/other.service', {
      method: 'DELETE',
      headers: { cookie, 'x-csrf-token': csrf, ...headers },
    });
    t.is(res.status, 403, JSON.stringify(headers));
    t.is(res.json.error?.code, 'CROSS_SITE_REQUEST');
  }
  // A form post from another site: no custom header, a simple content type.
  const form = await http.fetch('/api/v1/units/other.service/stop', {
    body: 'allowPending=1',
    headers: {
      cookie,
      'content-type': 'application/x-www-form-urlencoded',
      origin: 'http://evil.example',
    },
  });
  t.is(form.status, 403);
  t.deepEqual(await fingerprint(http.store), before);
});

test('a policy with tokens is refused on a plaintext listener off loopback', async (t) => {
  const http = await startHttp(t, etcd(), { policy: POLICY });
  await t.throwsAsync(
    () => startHttpServer({ listen: '0.0.0.0:0', core: http.core, logger: quietLogger }),
    { message: /must not cross the network in plaintext/ },
  );
});

test('a unit file asking for a capability the role lacks is refused over HTTP as over gRPC, naming key and capability', async (t) => {
  const http = await startHttp(t, etcd(), { policy: POLICY });
  const before = await fingerprint(http.store);
  const vol = [
    '[Service]',
    'ExecStart=/bin/sh -c "touch /host/owned"',
    '[Container]',
    'Image=127.0.0.1:1/busybox:1',
    'User=1000',
    'Volume=/:/host',
    '',
  ].join('\n');
  const res = await http.fetch('/api/v1/units', {
    token: WEBTEAM,
    body: { files: [file('web@vol.service', vol)] },
  });
  t.is(res.status, 403, res.text);
  t.regex(res.json.error?.message ?? '', /Volume=.*host-paths/);
  const host = await http.fetch('/api/v1/units', {
    token: WEBTEAM,
    body: { files: [file('web@hostetc.service', unitText())] },
  });
  t.is(host.status, 403, host.text);
  t.regex(host.json.error?.message ?? '', /host-process/);
  t.deepEqual(await fingerprint(http.store), before, 'a refused submit writes nothing');
});
