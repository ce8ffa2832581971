/**
 * The store against an etcd that serves TLS and requires client certificates
 * (`--client-cert-auth`), as production etcd clusters do: with the CA and a client
 * certificate every kind of call works (unary, lease keepalive stream); without either the
 * store fails at once with an error that says which one is missing, not a bare UNAVAILABLE.
 */
import test, { type ExecutionContext } from 'ava';
import {
  codecs,
  openStore,
  Presence,
  resolveStoreOptions,
  StoreError,
  type StoreOptions,
} from '../../store/index.js';
import { tlsFailure, type TlsFailureKind } from '../../lib/tls-failure.js';
import {
  assertEventually,
  clientTls,
  etcdForFile,
  makeMachine,
  pkiForFile,
  uniquePrefix,
} from '../../testkit/index.js';

const server = etcdForFile(test, { tls: true });
const otherPki = pkiForFile(test, 'not-the-etcd-ca');

function open(t: ExecutionContext, opts: StoreOptions) {
  const store = openStore({ endpoints: server().endpoint, callTimeoutMs: 2_000, ...opts });
  t.teardown(() => store.close());
  return store;
}

/** Fails `store.get` and returns its StoreError. */
async function failure(t: ExecutionContext, opts: StoreOptions) {
  const store = open(t, { prefix: uniquePrefix('tls-fail'), ...opts });
  const started = Date.now();
  const err = await t.throwsAsync(store.get(`${store.keys.prefix}k`), { instanceOf: StoreError });
  t.true(Date.now() - started < 3_000, `failed within the deadline, not after retries`);
  return err;
}

test('with the CA and a client certificate the store reads, writes and keeps a lease over TLS', async (t) => {
  const etcd = server();
  t.regex(etcd.endpoint, /^https:\/\//);
  const pki = etcd.pki;
  if (pki === undefined) throw new Error('etcd without TLS');
  const store = open(t, { prefix: uniquePrefix('tls'), tls: clientTls(pki) });
  const rev = await store.put(`${store.keys.prefix}k`, 'v');
  t.true(rev > 0n);
  t.is((await store.get(`${store.keys.prefix}k`))?.value.toString(), 'v');
  t.is((await store.list(store.keys.prefix)).items.length, 1);

  // A lease kept alive over the keepalive stream: streams ride the same TLS channel.
  const machine = makeMachine();
  const presence = new Presence(store, {
    key: store.keys.machine(machine.id),
    value: codecs.machine.encode(machine),
    ttlSeconds: 2,
  });
  t.teardown(() => presence.close({ revoke: true }));
  await presence.start();
  await new Promise((resolve) => setTimeout(resolve, 3_000)); // longer than the TTL
  const record = await store.getRecord(codecs.machine, store.keys.machine(machine.id));
  t.is(record?.value.id, machine.id, 'renewed over TLS, so still there after the TTL');
});

test('without the CA the store fails unavailable, saying that etcd is not trusted', async (t) => {
  const pki = server().pki;
  if (pki === undefined) throw new Error('etcd without TLS');
  const { cert, key } = clientTls(pki);
  for (const tls of [undefined, { cert, key }, { ...clientTls(otherPki()), cert, key }]) {
    const err = await failure(t, tls === undefined ? {} : { tls });
    t.is(err?.code, 'unavailable');
    t.regex(
      err?.message ?? '',
      /etcd's certificate is not trusted \(.+\): give the CA that signed it \(--etcd-cafile\)/,
    );
  }
});

test('without a client certificate (or with one of another CA) etcd refuses, and the error says so', async (t) => {
  const pki = server().pki;
  if (pki === undefined) throw new Error('etcd without TLS');
  const ca = pki.read(pki.caFile);
  const stranger = clientTls(otherPki());
  for (const tls of [{ ca }, { ca, cert: stranger.cert, key: stranger.key }]) {
    const err = await failure(t, { tls });
    t.is(err?.code, 'unavailable');
    t.regex(
      err?.message ?? '',
      /etcd refused this client's certificate or wants one \(.*alert.*\)/,
    );
    t.regex(err?.message ?? '', /--etcd-certfile, --etcd-keyfile/);
  }
});

test('an http:// endpoint to a TLS etcd fails at once, hinting at TLS', async (t) => {
  const endpoint = server().endpoint.replace('https://', 'http://');
  const err = await failure(t, { endpoints: endpoint });
  t.is(err?.code, 'unavailable');
  t.regex(
    err?.message ?? '',
    /closed the connection at once \(as a TLS etcd does to http:\/\/ clients\)/,
  );
});

test('TLS material with an http:// endpoint, or http:// beside https://, is refused up front', (t) => {
  const ca = Buffer.from('unused');
  t.throws(() => resolveStoreOptions({ endpoints: 'http://10.0.0.1:2379', tls: { ca } }), {
    instanceOf: RangeError,
    message: /http:\/\/10\.0\.0\.1:2379 is not https:\/\//,
  });
  t.throws(() => resolveStoreOptions({ endpoints: 'https://10.0.0.1:2379,http://10.0.0.2:2379' }), {
    instanceOf: RangeError,
  });
  const ok = resolveStoreOptions({ endpoints: 'https://10.0.0.1:2379', tls: { ca } });
  t.is(ok.tls?.ca, ca);
  t.is(resolveStoreOptions({}).tls, undefined);
});

test.serial('a store with TLS sees a restarted etcd again', async (t) => {
  const pki = server().pki;
  if (pki === undefined) throw new Error('etcd without TLS');
  const store = open(t, { prefix: uniquePrefix('tls-restart'), tls: clientTls(pki) });
  await store.put(`${store.keys.prefix}a`, '1');
  await server().restart();
  await assertEventually(() => store.put(`${store.keys.prefix}b`, '2'), {
    message: 'writes work again after the restart',
  });
  t.is((await store.list(store.keys.prefix)).items.length, 2);
});

test('tlsFailure reads the handshake failures grpc-js reports, and nothing else', (t) => {
  const last = (error: string) =>
    `No connection established. Last error: ${error}. Resolution note: `;
  const cases: [string, TlsFailureKind | undefined, string | undefined][] = [
    [
      last('Error: unable to verify the first certificate'),
      'untrusted',
      'unable to verify the first certificate',
    ],
    [
      last('Error: self-signed certificate in certificate chain'),
      'untrusted',
      'self-signed certificate in certificate chain',
    ],
    [last('Error: certificate has expired'), 'untrusted', 'certificate has expired'],
    [
      last(
        "Error [ERR_TLS_CERT_ALTNAME_INVALID]: Hostname/IP does not match certificate's altnames: IP: 127.0.0.2 is not in the cert's list: 127.0.0.1",
      ),
      'wrong-name',
      "Hostname/IP does not match certificate's altnames: IP: 127.0.0.2 is not in the cert's list: 127.0.0.1",
    ],
    [
      last(
        '80ACE7BCCC7F0000:error:0A00045C:SSL routines:ssl3_read_bytes:tlsv13 alert certificate required:../deps/openssl/openssl/ssl/record/rec_layer_s3.c:1601:SSL alert number 116\n (2026-11-24T18:46:27.528Z)',
      ),
      'refused',
      'tlsv13 alert certificate required',
    ],
    [
      last(
        '801C08B5FE7E0000:error:0A000412:SSL routines:ssl3_read_bytes:sslv3 alert bad certificate:...',
      ),
      'refused',
      'sslv3 alert bad certificate',
    ],
    [
      last(
        'Error: 80ACE7BCCC7F0000:error:0A00010B:SSL routines:ssl3_get_record:wrong version number:...',
      ),
      'not-tls',
      'wrong version number',
    ],
    [last('Failed to connect (2026-11-24T18:46:27.487Z)'), 'dropped', 'Failed to connect'],
    [last('read ECONNRESET'), 'dropped', 'read ECONNRESET'],
    ['14 UNAVAILABLE: read ECONNRESET', undefined, undefined],
    [last('Error: connect ECONNREFUSED 127.0.0.1:1'), undefined, undefined],
    [last('Protocol error (2026-11-24T18:47:02.821Z)'), undefined, undefined],
    ['etcdserver: request timed out', undefined, undefined],
  ];
  for (const [message, kind, reason] of cases) {
    const failure = tlsFailure(message);
    t.is(failure?.kind, kind, message);
    t.is(failure?.reason, reason, message);
  }
});
