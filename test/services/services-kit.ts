/**
 * What the routing mesh and DNS tests share: real TCP backends (node:net servers that answer
 * each connection with their name), service and endpoint records written straight into a real
 * etcd (as the API and the agents write them), and a client that reads one answer.
 */
import type { ExecutionContext } from 'ava';
import { createSocket } from 'node:dgram';
import { existsSync } from 'node:fs';
import * as dnsPacket from 'dns-packet';
import type { DecodedPacket, SrvAnswer, StringAnswer } from 'dns-packet';
import { connect, createServer, type Server } from 'node:net';
import { pino } from 'pino';
import { ServiceDirectory } from '../../agent/sync/service-directory.js';
import type { Endpoint, Service } from '../../proto/flotilla/v1/records.js';
import { codecs, openStore, type Store } from '../../store/index.js';
import type { EtcdServer } from '../../testkit/index.js';

/** Silent; MESH_LOG=debug shows the mesh's own log when a test needs looking into. */
export const quiet = pino({ level: process.env['MESH_LOG'] ?? 'silent' });

/** A store on `etcd` under `prefix`, closed at teardown. */
export function storeOn(t: ExecutionContext, etcd: EtcdServer, prefix: string): Store {
  const store = openStore({ endpoints: etcd.endpoint, prefix });
  t.teardown(() => store.close());
  return store;
}

/** A directory over `store`, listed, closed at teardown. */
export async function directoryOn(t: ExecutionContext, store: Store): Promise<ServiceDirectory> {
  const directory = new ServiceDirectory(store, quiet);
  t.teardown(() => directory.close());
  await directory.ready();
  return directory;
}

/** A backend that answers every connection with `name\n` and closes. */
export interface Backend {
  readonly name: string;
  readonly port: number;
  close(): Promise<void>;
}

export async function backend(t: ExecutionContext, name: string): Promise<Backend> {
  const server: Server = createServer((socket) => {
    socket.on('error', () => undefined);
    socket.end(`${name}\n`);
  });
  await new Promise<void>((resolve) => server.listen({ host: '127.0.0.1', port: 0 }, resolve));
  const address = server.address();
  const port = typeof address === 'object' && address !== null ? address.port : 0;
  let closed = false;
  const close = async (): Promise<void> => {
    if (closed) return;
    closed = true;
    await new Promise<void>((resolve) => server.close(() => resolve()));
  };
  t.teardown(close);
  return { name, port, close };
}

/** Writes `services/<name>` publishing `publish` (0: not published) for Port= `portName`. */
export async function putService(
  store: Store,
  name: string,
  publish: number,
  portName = 'http',
): Promise<void> {
  const record: Service = { name, publish, publishPortName: portName, units: [`${name}@.service`] };
  await store.put(store.keys.service(name), codecs.service.encode(record));
}

/** Writes one endpoint of `service` (instance `unit` on `machine`) at 127.0.0.1:`port`. */
export async function putEndpoint(
  store: Store,
  service: string,
  machine: string,
  unit: string,
  port: number,
  opts: { tags?: string[]; portName?: string; address?: string; lease?: bigint } = {},
): Promise<string> {
  const portName = opts.portName ?? 'http';
  const record: Endpoint = {
    service,
    unit,
    machine,
    address: opts.address ?? '127.0.0.1',
    port,
    portName,
    tags: opts.tags ?? [],
    health: 'none',
    sinceUnixMs: BigInt(Date.now()),
  };
  const key = store.keys.endpoint(service, machine, unit, portName);
  await store.put(
    key,
    codecs.endpoint.encode(record),
    opts.lease === undefined ? {} : { lease: opts.lease },
  );
  return key;
}

/** Connects to 127.0.0.1:`port` and reads until the other side closes (at most 3 s). */
export function ask(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port });
    let text = '';
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no answer on port ${port} within 3 s`));
    }, 3_000);
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => (text += chunk));
    socket.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    socket.on('close', () => {
      clearTimeout(timer);
      resolve(text.trim());
    });
  });
}

/** One DNS query over UDP to `host:port`; the decoded answer (at most 3 s). */
export function dnsQuery(
  host: string,
  port: number,
  name: string,
  type: 'A' | 'SRV',
): Promise<DecodedPacket> {
  const msg = dnsPacket.encode({
    type: 'query',
    id: Math.floor(Math.random() * 65_535),
    questions: [{ type, name }],
  });
  return new Promise((resolve, reject) => {
    const sock = createSocket('udp4');
    const timer = setTimeout(() => {
      sock.close();
      reject(new Error(`no DNS answer for ${name} from ${host}:${port}`));
    }, 3_000);
    sock.on('message', (answer) => {
      clearTimeout(timer);
      sock.close();
      resolve(dnsPacket.decode(answer));
    });
    sock.send(msg, port, host);
  });
}

/** The A addresses of an answer, sorted. */
export function aRecords(p: DecodedPacket): string[] {
  return (p.answers ?? [])
    .filter((a): a is StringAnswer => a.type === 'A')
    .map((a) => a.data)
    .sort();
}

/** The SRV targets of an answer as `hex.addr.flotilla:port`, sorted. */
export function srvRecords(p: DecodedPacket): string[] {
  return (p.answers ?? [])
    .filter((a): a is SrvAnswer => a.type === 'SRV')
    .map((a) => `${a.data.target}:${a.data.port}`)
    .sort();
}

/** The haproxy the HAProxy data plane's tests run, found at load (tests are declared then). */
export function haproxyBinary(): string | undefined {
  const dirs = [...(process.env['PATH'] ?? '').split(':'), '/usr/sbin'];
  return dirs
    .filter((d) => d !== '')
    .map((d) => `${d}/haproxy`)
    .find((p) => existsSync(p));
}
