/**
 * The listener over TLS with the API's certificate options: mutual TLS identifies the caller
 * by its certificate's subject (as the gRPC API does), a login's cookie is Secure, and a
 * client without a certificate is refused at the handshake.
 */
import { request as httpsRequest } from 'node:https';
import test from 'ava';
import { hashToken } from '../../scheduler/gate/auth-policy.js';
import { etcdForFile, pkiForFile } from '../../testkit/index.js';
import { REQUEST_TIMEOUT_MS, startHttp } from './http-kit.js';

const etcd = etcdForFile(test);
const pki = pkiForFile(test, 'http-tls-test-ca');

const TOKEN = 'tls-token-0123456789';
const POLICY = JSON.stringify({
  roles: { viewer: [{ verbs: ['read'] }], admin: [{ verbs: ['admin'] }] },
  identities: [
    { subject: { CN: 'flotilla-test-client' }, roles: ['viewer'] },
    { name: 'ops', tokenSha256: hashToken(TOKEN), roles: ['admin'] },
  ],
});

interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

function get(
  url: string,
  opts: { method?: string; body?: string; cert?: boolean } = {},
): Promise<Reply> {
  const p = pki();
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      url,
      {
        method: opts.method ?? 'GET',
        ca: p.read(p.caFile),
        ...(opts.cert === false
          ? {}
          : { cert: p.read(p.client.certFile), key: p.read(p.client.keyFile) }),
        headers: opts.body === undefined ? {} : { 'content-type': 'application/json' },
        timeout: REQUEST_TIMEOUT_MS,
      },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      },
    );
    req.on('error', reject);
    req.end(opts.body);
  });
}

test('mutual TLS names the caller by its certificate; a login cookie is Secure; no certificate, no handshake', async (t) => {
  const p = pki();
  const http = await startHttp(t, etcd(), {
    policy: POLICY,
    tls: {
      cert: p.read(p.server.certFile),
      key: p.read(p.server.keyFile),
      clientCa: p.read(p.caFile),
    },
  });
  t.regex(http.url, /^https:\/\//);
  const me = await get(`${http.url}/api/v1/session`);
  t.is(me.status, 200, me.body);
  t.is((JSON.parse(me.body) as { identity: string }).identity, 'CN=flotilla-test-client');
  const login = await get(`${http.url}/api/v1/session`, {
    method: 'POST',
    body: JSON.stringify({ token: TOKEN }),
  });
  t.is(login.status, 200, login.body);
  const cookie = String(login.headers['set-cookie'] ?? '');
  t.regex(cookie, /HttpOnly/);
  t.regex(cookie, /SameSite=Strict/);
  t.regex(cookie, /; Secure/);
  await t.throwsAsync(() => get(`${http.url}/healthz`, { cert: false }));
});
