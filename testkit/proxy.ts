/**
 * A loopback TCP proxy that tests put between a client and etcd to cut the client off
 * while etcd keeps serving everyone else: a network partition without root or iptables.
 *
 * @example
 *   const proxy = await startProxy(etcd.clientPort);
 *   const store = openStore({ endpoints: proxy.endpoint });
 *   proxy.block();            // the store's connections die; etcd is fine
 *   proxy.unblock();          // the store reconnects
 *   t.teardown(() => proxy.close());
 */
import { connect, createServer, type Server, type Socket } from 'node:net';
import { freePort } from './ports.js';

/** How {@link TcpProxy.block} cuts the client off. */
export type BlockMode =
  /** Close every connection at once and refuse new ones: the client sees errors quickly. */
  | 'reset'
  /** Keep connections open but forward nothing, new ones too: the client sees silence and
   * must rely on its deadlines and keepalives, like a real partition. */
  | 'drop';

/** A running proxy from `endpoint` to 127.0.0.1:targetPort. */
export interface TcpProxy {
  /** `http://127.0.0.1:<port>`, usable as an etcd endpoint. */
  readonly endpoint: string;
  readonly port: number;
  /** Cuts every client off (existing and new connections) until {@link unblock}. */
  block(mode?: BlockMode): void;
  /** Forwards again; clients reconnect. Connections held in 'drop' mode are closed. */
  unblock(): void;
  readonly blocked: boolean;
  /** Stops listening and closes every connection. */
  close(): Promise<void>;
}

/** Starts a proxy to 127.0.0.1:`targetPort` on a free loopback port. */
export async function startProxy(targetPort: number): Promise<TcpProxy> {
  const port = await freePort();
  const pairs = new Set<[Socket, Socket | undefined]>();
  let mode: BlockMode | undefined;

  const server: Server = createServer((client) => {
    client.on('error', () => undefined);
    if (mode === 'reset') {
      client.destroy();
      return;
    }
    const pair: [Socket, Socket | undefined] = [client, undefined];
    pairs.add(pair);
    client.on('close', () => {
      pairs.delete(pair);
      pair[1]?.destroy();
    });
    if (mode === 'drop') return; // hold it open, forward nothing
    const upstream = connect({ host: '127.0.0.1', port: targetPort });
    pair[1] = upstream;
    upstream.on('error', () => client.destroy());
    upstream.on('close', () => client.destroy());
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host: '127.0.0.1', port }, () => resolve());
  });

  const destroyAll = (): void => {
    for (const [client, upstream] of pairs) {
      client.destroy();
      upstream?.destroy();
    }
    pairs.clear();
  };

  return {
    endpoint: `http://127.0.0.1:${port}`,
    port,
    get blocked() {
      return mode !== undefined;
    },
    block(how: BlockMode = 'reset') {
      mode = how;
      if (how === 'reset') {
        destroyAll();
        return;
      }
      for (const [client, upstream] of pairs) {
        client.unpipe();
        upstream?.unpipe();
        client.pause();
        upstream?.pause();
      }
    },
    unblock() {
      if (mode === 'drop') destroyAll();
      mode = undefined;
    },
    async close() {
      mode = 'reset';
      destroyAll();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
