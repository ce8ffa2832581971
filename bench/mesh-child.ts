/**
 * The child processes of `bench/mesh.ts`, each its own event loop as an agent would be:
 *
 * - `mesh ETCD PREFIX [builtin|haproxy]`: one agent's routing mesh (ServiceDirectory and the
 *   data plane, the agent's own code: the built-in proxy, or the HAProxy the agent supervises)
 *   on 127.0.0.1, serving whatever services/ publishes; says `ready` once listening.
 * - `routers ETCD PREFIX COUNT SERVICES PROBE`: COUNT simulated routing agents, each with its
 *   own ServiceDirectory following the endpoints of SERVICES (comma-separated) as a machine
 *   that publishes them does; whenever an agent's view of service PROBE changes it reports the
 *   probe instances it now sees serving (`{ agent, seen: [unit], at }`) to the parent.
 */
import { pino } from 'pino';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { findHaproxy } from '../agent/mesh/choose-data-plane.js';
import type { MeshDataPlane } from '../agent/mesh/data-plane.js';
import { HaproxyMesh } from '../agent/mesh/haproxy-mesh.js';
import { RoutingMesh } from '../agent/mesh/routing-mesh.js';
import { ServiceDirectory } from '../agent/sync/service-directory.js';
import { openStore } from '../store/index.js';

const quiet = pino({ level: 'silent' });

function send(message: unknown): void {
  process.send?.(message);
}

async function mesh(etcd: string, prefix: string, plane: string): Promise<void> {
  const store = openStore({ endpoints: [etcd], prefix });
  const directory = new ServiceDirectory(store, quiet);
  await directory.ready();
  let routing: MeshDataPlane;
  if (plane === 'haproxy') {
    const found = await findHaproxy();
    if (found === undefined) throw new Error('no haproxy 2.5+ installed');
    const dir = mkdtempSync(join(tmpdir(), 'flotilla-bench-haproxy-'));
    routing = new HaproxyMesh(directory, quiet, {
      binary: found.binary,
      dir,
      listenAddress: '127.0.0.1',
    });
    // The parent ends this process with SIGTERM: HAProxy goes with it.
    process.once('SIGTERM', () => {
      void routing.close().finally(() => {
        rmSync(dir, { recursive: true, force: true });
        process.exit(0);
      });
    });
  } else {
    routing = new RoutingMesh(directory, quiet, { listenAddress: '127.0.0.1' });
  }
  await routing.start();
  const poll = setInterval(() => {
    const ports = routing.listening();
    if (ports.length > 0 && ports.every((p) => p.backends > 0)) {
      clearInterval(poll);
      send({ ready: ports.map((p) => p.port) });
    }
  }, 20);
}

async function routers(
  etcd: string,
  prefix: string,
  count: number,
  services: string[],
  probe: string,
): Promise<void> {
  const store = openStore({ endpoints: [etcd], prefix });
  const ready: Promise<void>[] = [];
  for (let agent = 0; agent < count; agent++) {
    const directory = new ServiceDirectory(store, quiet);
    for (const service of services) {
      const view = directory.acquire(service);
      ready.push(view.ready());
      if (service !== probe) continue;
      view.onChange(() => {
        const seen = view
          .serving()
          .filter((e) => e.unit.startsWith('probe@'))
          .map((e) => e.unit);
        send({ agent, seen, at: Date.now() });
      });
    }
  }
  await Promise.all(ready);
  send({ ready: count });
}

const [mode, etcd = '', prefix = '', ...rest] = process.argv.slice(2);
const main =
  mode === 'mesh'
    ? mesh(etcd, prefix, rest[0] ?? 'builtin')
    : routers(etcd, prefix, Number(rest[0]), (rest[1] ?? '').split(','), rest[2] ?? '');
main.catch((err: unknown) => {
  process.stderr.write(`bench/mesh-child ${mode ?? ''}: ${String(err)}\n`);
  process.exit(1);
});
