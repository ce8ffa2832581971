/**
 * A real registry for a test file: Debian's `docker-registry` on 127.0.0.1 at a free port,
 * its storage in a temp directory, and the fixture images built offline from busybox-static
 * with umoci and pushed with skopeo. `stop()` kills it and removes everything.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildImage, busyboxRoot, initLayout, pushImage } from '../../deploy/images/build.js';
import { registryConfig, waitForRegistry } from '../../deploy/images/registry-server.js';
import { freePort } from './ports.js';

export interface TestRegistry {
  /** `127.0.0.1:PORT` */
  readonly addr: string;
  readonly dir: string;
  /** The OCI layout holding the fixture tags (see {@link pushFixtures}). */
  readonly layout: string;
  /** Stops the registry (its storage stays until {@link stop}). */
  pause(): Promise<void>;
  /** Starts it again on the same address and storage. */
  resume(): Promise<void>;
  stop(): Promise<void>;
}

/** Starts a registry; call `stop()` in `test.after.always`. */
export async function startRegistry(): Promise<TestRegistry> {
  const dir = await mkdtemp(join(tmpdir(), 'flotilla-registry-'));
  const addr = `127.0.0.1:${await freePort()}`;
  const config = join(dir, 'config.yml');
  await writeFile(config, registryConfig(addr, join(dir, 'storage')));
  let child: ChildProcess | undefined;
  const start = async (): Promise<void> => {
    child = spawn('docker-registry', ['serve', config], { stdio: 'ignore' });
    await waitForRegistry(addr);
  };
  const pause = async (): Promise<void> => {
    const c = child;
    child = undefined;
    if (c === undefined || c.exitCode !== null) return;
    const gone = new Promise((resolve) => c.once('exit', resolve));
    c.kill('SIGKILL');
    await gone;
  };
  await start();
  return {
    addr,
    dir,
    layout: join(dir, 'layout'),
    pause,
    resume: start,
    stop: async () => {
      await pause();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/**
 * The fixture images, in `reg.layout` and pushed as `fixtures/<tag>:1`:
 * - `base`: busybox-static (one layer), Cmd `sh -c 'echo base; sleep 1000'`
 * - `app`: base's layer plus one with /only-in-image and /etc/motd (shares base's layer)
 * - `whiteout`: app plus a layer deleting /only-in-image (a whiteout) and /etc/motd
 */
export async function pushFixtures(reg: TestRegistry): Promise<void> {
  await initLayout(reg.layout);
  await buildImage(reg.layout, null, 'base', busyboxRoot, {
    cmd: ['/bin/sh', '-c', 'echo base; sleep 1000'],
    env: ['PATH=/bin', 'FROM_IMAGE=yes'],
  });
  await buildImage(reg.layout, 'base', 'app', async (rootfs) => {
    await writeFile(join(rootfs, 'only-in-image'), 'only in the image\n');
    await writeFile(join(rootfs, 'etc', 'motd'), 'motd\n');
    await mkdir(join(rootfs, 'data'), { recursive: true });
  });
  await buildImage(reg.layout, 'app', 'whiteout', async (rootfs) => {
    await rm(join(rootfs, 'only-in-image'));
    await rm(join(rootfs, 'etc', 'motd'));
  });
  for (const tag of ['base', 'app', 'whiteout']) {
    await pushImage(reg.layout, tag, `${reg.addr}/fixtures/${tag}:1`, true);
  }
}
