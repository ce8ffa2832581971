/**
 * Which data plane carries the routing mesh (`--mesh-data-plane`): HAProxy where it is
 * installed (`auto`, the default; docs/benchmarks.md has why), else the built-in proxy. An
 * explicit `haproxy` that cannot be found or started is an error; `auto` falls back and says so.
 */
import { execFile } from 'node:child_process';
import { access, constants } from 'node:fs/promises';
import { delimiter, join } from 'node:path';
import type { Logger } from 'pino';
import type { ServiceCatalog } from './catalog.js';
import type { DataPlaneChoice, MeshDataPlane, MeshDataPlaneOptions } from './data-plane.js';
import { HaproxyMesh } from './haproxy-mesh.js';
import { RoutingMesh } from './routing-mesh.js';

/** An haproxy found on this machine. */
export interface FoundHaproxy {
  readonly binary: string;
  /** e.g. `2.6.12-1+deb12u4`. */
  readonly version: string;
}

/** HAProxy 2.5 is the first whose master CLI reports failed reloads (`show proc`). */
const MIN_VERSION = [2, 5];

/** The first haproxy on PATH (or in /usr/sbin, Debian's place) that is 2.5 or newer. */
export async function findHaproxy(): Promise<FoundHaproxy | undefined> {
  const dirs = [...(process.env['PATH'] ?? '').split(delimiter), '/usr/sbin', '/usr/local/sbin'];
  for (const dir of dirs) {
    if (dir === '') continue;
    const binary = join(dir, 'haproxy');
    const ok = await access(binary, constants.X_OK).then(
      () => true,
      () => false,
    );
    if (!ok) continue;
    const version = await haproxyVersion(binary);
    if (version === undefined) continue;
    const [major = 0, minor = 0] = version.split('.').map(Number);
    const [minMajor = 0, minMinor = 0] = MIN_VERSION;
    if (major > minMajor || (major === minMajor && minor >= minMinor)) return { binary, version };
  }
  return undefined;
}

function haproxyVersion(binary: string): Promise<string | undefined> {
  return new Promise((resolve) => {
    execFile(binary, ['-v'], { timeout: 5_000, maxBuffer: 64 * 1024 }, (err, stdout) => {
      const m = /version\s+(\d+\.\d+[^\s]*)/i.exec(String(stdout));
      resolve(err === null && m !== null ? m[1] : undefined);
    });
  });
}

/** Options of {@link startDataPlane}. */
export interface StartDataPlaneOptions extends MeshDataPlaneOptions {
  readonly choice: DataPlaneChoice;
  /** HAProxy's private directory (created 0700). */
  readonly dir: string;
}

/** Starts the data plane `choice` asks for; rejects when an explicit `haproxy` cannot run. */
export async function startDataPlane(
  catalog: ServiceCatalog,
  log: Logger,
  opts: StartDataPlaneOptions,
): Promise<MeshDataPlane> {
  const { choice, dir, ...common } = opts;
  if (choice !== 'builtin') {
    const found = await findHaproxy();
    if (found === undefined && choice === 'haproxy') {
      throw new Error(
        '--mesh-data-plane=haproxy: no haproxy 2.5+ on PATH or in /usr/sbin; install it ' +
          '(apt-get install haproxy) or use --mesh-data-plane=builtin',
      );
    }
    if (found !== undefined) {
      const mesh = new HaproxyMesh(catalog, log, {
        ...common,
        binary: found.binary,
        dir,
        description: `haproxy ${found.version}`,
      });
      try {
        await mesh.start();
        return mesh;
      } catch (err) {
        await mesh.close();
        const why = err instanceof Error ? err.message : String(err);
        if (choice === 'haproxy') {
          throw new Error(`--mesh-data-plane=haproxy: ${found.binary} cannot run (${why})`);
        }
        log.warn({ err: why }, 'mesh: haproxy cannot run; using the built-in proxy');
      }
    }
  }
  const mesh = new RoutingMesh(catalog, log, common);
  await mesh.start();
  return mesh;
}
