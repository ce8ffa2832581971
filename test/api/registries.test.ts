/**
 * What a submit may make the scheduler contact (issue 30): with `--allowed-registries`, an
 * `Image=` naming any other registry is refused before a single connection is made; and a
 * registry host that answers with arbitrary text never gets that text into the API's answer.
 * Real etcd, real API, real skopeo against a local TCP/HTTP server that counts connections.
 */
import { createServer as createHttpServer } from 'node:http';
import { createServer, type Server } from 'node:net';
import { status } from '@grpc/grpc-js';
import test, { type ExecutionContext } from 'ava';
import { REGISTRY_DEFAULTS } from '../../registry/skopeo.js';
import { parseSchedulerArgs } from '../../scheduler/options.js';
import { etcdForFile } from '../../testkit/index.js';
import { failure, fingerprint, startApi } from './api-kit.js';

const etcd = etcdForFile(test);

function imageFile(image: string): string {
  return `[Unit]\nDescription=img\n\n[Container]\nImage=${image}\nUser=1000\n`;
}

/** Listens on a free loopback port; counts connections; closed at teardown. */
async function listen(
  t: ExecutionContext,
  server: Server,
): Promise<{ addr: string; count(): number }> {
  let connections = 0;
  server.on('connection', () => (connections += 1));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const a = server.address();
  if (a === null || typeof a === 'string') throw new Error('no TCP address');
  return { addr: `127.0.0.1:${a.port}`, count: () => connections };
}

test('--allowed-registries: an Image= from another registry is refused before any connection', async (t) => {
  const probe = await listen(
    t,
    createServer((s) => s.destroy()),
  );
  const api = await startApi(t, etcd(), {
    registry: {
      ...REGISTRY_DEFAULTS,
      insecureRegistries: [probe.addr],
      allowedRegistries: ['registry.example:5000'],
    },
  });
  const before = await fingerprint(api.store);
  const err = await failure(
    api.submit({ files: [{ name: 'probe.service', contents: imageFile(`${probe.addr}/x:1`) }] }),
  );
  t.is(err.code, status.PERMISSION_DENIED, err.details);
  t.regex(
    err.details,
    /^probe\.service:5: Image=127\.0\.0\.1:\d+\/x:1 names registry 127\.0\.0\.1:\d+, which this cluster does not allow \(--allowed-registries registry\.example:5000\)/,
  );
  t.is(probe.count(), 0, 'no connection was made');
  t.deepEqual(await fingerprint(api.store), before);
  // Docker Hub's names (no host) are docker.io's: refused too unless it is listed.
  const hub = await failure(
    api.submit({ files: [{ name: 'hub.service', contents: imageFile('busybox:1') }] }),
  );
  t.regex(hub.details, /names registry docker\.io/);
});

test("a registry host's own answer never reaches the submitter", async (t) => {
  const secret = 'SECRET-BODY-4f1c2b';
  // A registry API that answers its version check, then an error whose text is the host's.
  const http = createHttpServer((req, res) => {
    if (req.url === '/v2/') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{}');
      return;
    }
    res.writeHead(400, { 'content-type': 'application/json' });
    const message = `internal: ${secret} root:x:0:0:root:/root:/bin/bash`;
    res.end(JSON.stringify({ errors: [{ code: 'UNSUPPORTED', message }] }));
  });
  const host = await listen(t, http);
  const api = await startApi(t, etcd(), {
    registry: { ...REGISTRY_DEFAULTS, insecureRegistries: [host.addr], inspectTimeoutMs: 20_000 },
  });
  const err = await failure(
    api.submit({ files: [{ name: 'leak.service', contents: imageFile(`${host.addr}/x:1`) }] }),
  );
  t.true(host.count() > 0, 'the registry was asked');
  t.false(err.details.includes(secret), err.details);
  t.false(err.details.includes('root:x:0:0'), err.details);
  t.true(err.details.length <= 1_000, `bounded: ${err.details.length} characters`);
  t.regex(err.details, /^leak\.service:5: Image=127\.0\.0\.1:\d+\/x:1: /);
});

test('--allowed-registries takes HOST[:PORT] lists and refuses anything else at start', (t) => {
  const parse = (value: string) =>
    parseSchedulerArgs(['--listen', 'none', '--allowed-registries', value], () => '');
  const ok = parse('registry.example:5000,docker.io');
  t.deepEqual(ok.help ? [] : ok.options.registry?.allowedRegistries, [
    'registry.example:5000',
    'docker.io',
  ]);
  t.throws(() => parse('https://registry.example'), { message: /--allowed-registries: "https:/ });
  const none = parseSchedulerArgs(['--listen', 'none'], () => '');
  t.is(none.help ? 'help' : none.options.registry?.allowedRegistries, undefined);
});
