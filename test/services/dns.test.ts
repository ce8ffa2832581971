/**
 * The agent's DNS against a real etcd: A and SRV answers match the endpoint records, tag
 * names select, other names are REFUSED (or forwarded to a recursor), and endpoints are
 * watched only for services someone asked about.
 */
import test, { type ExecutionContext } from 'ava';
import { createSocket } from 'node:dgram';
import { connect } from 'node:net';
import * as dnsPacket from 'dns-packet';
import type { DecodedPacket, RecordType, SrvAnswer, StringAnswer } from 'dns-packet';
import { DnsServer } from '../../agent/dns/dns-server.js';
import { ServiceResolver } from '../../agent/dns/resolver.js';
import { assertEventually, etcdForFile, uniquePrefix } from '../../testkit/index.js';
import { directoryOn, putEndpoint, putService, storeOn } from './services-kit.js';

const server = etcdForFile(test);

const RCODE_NXDOMAIN = 3;
const RCODE_REFUSED = 5;

async function dnsOn(t: ExecutionContext, label: string, recursor?: string) {
  const store = storeOn(t, server(), uniquePrefix(label));
  const directory = await directoryOn(t, store);
  const resolver = new ServiceResolver(directory, { idleMs: 60_000 });
  const dns = new DnsServer({
    listen: '127.0.0.1:0',
    resolver,
    ...(recursor === undefined ? {} : { recursor }),
  });
  await dns.listen();
  t.teardown(async () => {
    resolver.close();
    await dns.close();
  });
  const port = Number(dns.address.split(':')[1]);
  return { store, directory, resolver, dns, port };
}

/** One query over UDP (or TCP), its decoded answer. */
function query(port: number, name: string, type: RecordType, tcp = false): Promise<DecodedPacket> {
  const msg = dnsPacket.encode({
    type: 'query',
    id: Math.floor(Math.random() * 65_535),
    flags: dnsPacket.RECURSION_DESIRED,
    questions: [{ type, name }],
  });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no DNS answer for ${name}`)), 3_000);
    if (tcp) {
      const socket = connect({ host: '127.0.0.1', port });
      const len = Buffer.alloc(2);
      len.writeUInt16BE(msg.length);
      socket.end(Buffer.concat([len, msg]));
      let buf = Buffer.alloc(0);
      socket.on('data', (chunk: Buffer) => {
        buf = Buffer.concat([buf, chunk]);
        if (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
          clearTimeout(timer);
          socket.destroy();
          resolve(dnsPacket.decode(buf.subarray(2)));
        }
      });
      socket.on('error', reject);
      return;
    }
    const sock = createSocket('udp4');
    sock.on('message', (answer) => {
      clearTimeout(timer);
      sock.close();
      resolve(dnsPacket.decode(answer));
    });
    sock.send(msg, port, '127.0.0.1');
  });
}

/** Waits until the directory has the service record (written a moment ago). */
async function known(directory: { services(): ReadonlyMap<string, unknown> }, name: string) {
  await assertEventually(() => directory.services().has(name));
}

const rcode = (p: DecodedPacket): number => (p.flags ?? 0) & 0xf;
const addresses = (p: DecodedPacket): string[] =>
  (p.answers ?? [])
    .filter((a): a is StringAnswer => a.type === 'A')
    .map((a) => a.data)
    .sort();
const srvs = (p: DecodedPacket): string[] =>
  (p.answers ?? [])
    .filter((a): a is SrvAnswer => a.type === 'SRV')
    .map((a) => `${a.data.target}:${a.data.port}`)
    .sort();

test('A and SRV of NAME.service.flotilla are the serving endpoints, over UDP and TCP', async (t) => {
  const { store, port, directory } = await dnsOn(t, 'dns-a-srv');
  await putService(store, 'web', 8080);
  await known(directory, 'web');
  await putEndpoint(store, 'web', 'm1', 'web@1.service', 20001, { address: '10.0.0.1' });
  await putEndpoint(store, 'web', 'm1', 'web@2.service', 20002, { address: '10.0.0.1' });
  await putEndpoint(store, 'web', 'm2', 'web@3.service', 20001, { address: '10.0.0.2' });
  const a = await query(port, 'web.service.flotilla', 'A');
  t.is(rcode(a), 0);
  t.deepEqual(addresses(a), ['10.0.0.1', '10.0.0.2'], 'one A per address');
  t.true((a.answers ?? []).every((r) => r.type === 'A' && r.ttl === 3));
  const srv = await query(port, 'WEB.service.flotilla.', 'SRV', true);
  t.deepEqual(srvs(srv), [
    '0a000001.addr.flotilla:20001',
    '0a000001.addr.flotilla:20002',
    '0a000002.addr.flotilla:20001',
  ]);
  // The SRV targets resolve, in the additional section and by themselves.
  t.deepEqual(
    (srv.additionals ?? [])
      .filter((r) => r.type === 'A')
      .map((r) => r.name)
      .sort(),
    ['0a000001.addr.flotilla', '0a000002.addr.flotilla'],
  );
  t.deepEqual(addresses(await query(port, '0a000002.addr.flotilla', 'A')), ['10.0.0.2']);
});

test('an endpoint removed or added shows in the next answer within 1 s', async (t) => {
  const { store, port, directory } = await dnsOn(t, 'dns-change');
  await putService(store, 'api', 0);
  await known(directory, 'api');
  const gone = await putEndpoint(store, 'api', 'm1', 'api@1.service', 20001, {
    address: '10.1.0.1',
  });
  await putEndpoint(store, 'api', 'm2', 'api@2.service', 20001, { address: '10.1.0.2' });
  t.deepEqual(addresses(await query(port, 'api.service.flotilla', 'A')), ['10.1.0.1', '10.1.0.2']);
  const at = Date.now();
  await store.delete(gone);
  await assertEventually(
    async () => addresses(await query(port, 'api.service.flotilla', 'A')).join() === '10.1.0.2',
    { timeoutMs: 5_000, intervalMs: 10 },
  );
  const took = Date.now() - at;
  t.log(`removal reached DNS in ${took} ms`);
  t.true(took < 1_000);
  await putEndpoint(store, 'api', 'm3', 'api@3.service', 20001, { address: '10.1.0.3' });
  await assertEventually(
    async () => addresses(await query(port, 'api.service.flotilla', 'A')).length === 2,
    { timeoutMs: 1_000, intervalMs: 10 },
  );
  t.pass();
});

test('TAG.NAME.service.flotilla answers only the endpoints with that tag', async (t) => {
  const { store, port, directory } = await dnsOn(t, 'dns-tags');
  await putService(store, 'shop', 80);
  await known(directory, 'shop');
  await putEndpoint(store, 'shop', 'm1', 'shop@1.service', 20001, {
    address: '10.2.0.1',
    tags: ['blue'],
  });
  await putEndpoint(store, 'shop', 'm2', 'shop@2.service', 20001, {
    address: '10.2.0.2',
    tags: ['green', 'Canary'],
  });
  t.deepEqual(addresses(await query(port, 'blue.shop.service.flotilla', 'A')), ['10.2.0.1']);
  t.deepEqual(addresses(await query(port, 'green.shop.service.flotilla', 'A')), ['10.2.0.2']);
  t.deepEqual(addresses(await query(port, 'canary.shop.service.flotilla', 'A')), ['10.2.0.2']);
  const none = await query(port, 'red.shop.service.flotilla', 'A');
  t.is(rcode(none), 0, 'a known service with no such tag: an empty answer');
  t.deepEqual(addresses(none), []);
});

test('_PORT._tcp.NAME.service.flotilla gives SRV of that Port= name only', async (t) => {
  const { store, port, directory } = await dnsOn(t, 'dns-ports');
  await putService(store, 'db', 0, 'sql');
  await known(directory, 'db');
  await putEndpoint(store, 'db', 'm1', 'db@1.service', 20001, {
    address: '10.3.0.1',
    portName: 'sql',
  });
  await putEndpoint(store, 'db', 'm1', 'db@1.service', 20002, {
    address: '10.3.0.1',
    portName: 'metrics',
  });
  t.deepEqual(srvs(await query(port, 'db.service.flotilla', 'SRV')), [
    '0a030001.addr.flotilla:20001',
  ]);
  t.deepEqual(srvs(await query(port, '_metrics._tcp.db.service.flotilla', 'SRV')), [
    '0a030001.addr.flotilla:20002',
  ]);
});

test('names outside the zone are REFUSED, unknown services NXDOMAIN, and neither opens a watch', async (t) => {
  const { port, directory, dns } = await dnsOn(t, 'dns-refused');
  t.is(rcode(await query(port, 'example.com', 'A')), RCODE_REFUSED);
  t.is(rcode(await query(port, 'nosuch.service.flotilla', 'A')), RCODE_NXDOMAIN);
  t.is(rcode(await query(port, 'a.b.c.nosuch.service.flotilla', 'SRV', true)), RCODE_NXDOMAIN);
  t.is(directory.watched, 0);
  t.is(dns.stats.refused, 1);
});

test('a service is watched once asked about, and not before', async (t) => {
  const { store, port, directory, resolver } = await dnsOn(t, 'dns-lazy');
  await putService(store, 'one', 0);
  await putService(store, 'two', 0);
  await assertEventually(() => directory.services().size === 2);
  t.is(directory.watched, 0);
  await query(port, 'one.service.flotilla', 'A');
  t.is(directory.watched, 1);
  t.is(resolver.size, 1);
});

test('with a recursor, other names are forwarded and its answer returned', async (t) => {
  // The recursor: a second DNS server, whose zone is flotilla like ours, on another prefix.
  const upstream = await dnsOn(t, 'dns-upstream');
  await putService(upstream.store, 'far', 0);
  await known(upstream.directory, 'far');
  await putEndpoint(upstream.store, 'far', 'm9', 'far@1.service', 20001, { address: '10.9.0.9' });
  const { port, dns } = await dnsOn(t, 'dns-forwarding', `127.0.0.1:${upstream.port}`);
  // Ours refuses nothing now: outside names go upstream (which refuses example.com itself).
  t.is(rcode(await query(port, 'example.com', 'A')), RCODE_REFUSED);
  t.is(dns.stats.forwarded, 1);
  t.is(upstream.dns.stats.refused, 1, 'the upstream answered it');
});

test('a message that is not DNS gets no answer and the server keeps answering', async (t) => {
  const { store, port, directory } = await dnsOn(t, 'dns-garbage');
  const sock = createSocket('udp4');
  await new Promise<void>((resolve) =>
    sock.send(Buffer.from('hello'), port, '127.0.0.1', () => resolve()),
  );
  sock.close();
  await putService(store, 'ok', 0);
  await known(directory, 'ok');
  await putEndpoint(store, 'ok', 'm1', 'ok@1.service', 20001, { address: '10.4.0.1' });
  t.deepEqual(addresses(await query(port, 'ok.service.flotilla', 'A')), ['10.4.0.1']);
});
