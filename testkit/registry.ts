/**
 * A real registry for a test file: Debian's `docker-registry` on 127.0.0.1 at a free port,
 * its storage in a temp directory, and the fixture images built offline from busybox-static
 * with umoci and pushed with skopeo. `stop()` kills it and removes everything.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { promisify } from 'node:util';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildImage, busyboxRoot, initLayout, pushImage } from '../deploy/images/build.js';
import { registryConfig, waitForRegistry } from '../deploy/images/registry-server.js';
import { freePort } from './ports.js';

const run = promisify(execFile);

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

/** A user the registry requires (htpasswd, bcrypt), and the auth file that logs in as it. */
export interface RegistryUser {
  readonly user: string;
  readonly password: string;
}

/**
 * Starts a registry; call `stop()` in `test.after.always`. With `login`, every request
 * needs that user's credentials (htpasswd; the bcrypt hash made with python3's crypt).
 */
export async function startRegistry(login?: RegistryUser): Promise<TestRegistry> {
  const dir = await mkdtemp(join(tmpdir(), 'flotilla-registry-'));
  const addr = `127.0.0.1:${await freePort()}`;
  const config = join(dir, 'config.yml');
  let text = registryConfig(addr, join(dir, 'storage'));
  if (login !== undefined) {
    const script =
      'import crypt,sys; print(crypt.crypt(sys.argv[1], crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=16)))';
    const { stdout } = await run('python3', ['-W', 'ignore', '-c', script, login.password]);
    await writeFile(join(dir, 'htpasswd'), `${login.user}:${stdout.trim()}\n`);
    text += `auth:\n  htpasswd:\n    realm: test\n    path: ${JSON.stringify(join(dir, 'htpasswd'))}\n`;
  }
  await writeFile(config, text);
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
  try {
    await start();
  } catch (err) {
    await pause();
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
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
export async function pushFixtures(reg: TestRegistry, login?: RegistryUser): Promise<void> {
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
    await pushImage(reg.layout, tag, `${reg.addr}/fixtures/${tag}:1`, true, login);
  }
}

/** A containers-auth.json for `login` at `reg`, written into the registry's directory. */
export async function authFile(reg: TestRegistry, login: RegistryUser): Promise<string> {
  const path = join(reg.dir, 'auth.json');
  const auth = Buffer.from(`${login.user}:${login.password}`).toString('base64');
  await writeFile(path, JSON.stringify({ auths: { [reg.addr]: { auth } } }));
  return path;
}

/** The OCI platform name of this host's architecture. */
export function hostArch(): string {
  return process.arch === 'x64' ? 'amd64' : process.arch;
}

/**
 * `fixtures/multi:1`, an image index (a manifest list) of two platforms: `app` for this
 * host's architecture, `base` for another. Needs {@link pushFixtures} first.
 */
export async function pushMultiPlatform(reg: TestRegistry): Promise<void> {
  const index = JSON.parse(await readFile(join(reg.layout, 'index.json'), 'utf8')) as {
    manifests: {
      digest: string;
      size: number;
      mediaType: string;
      annotations?: Record<string, string>;
    }[];
  };
  const byTag = (tag: string) => {
    const m = index.manifests.find(
      (x) => x.annotations?.['org.opencontainers.image.ref.name'] === tag,
    );
    if (m === undefined) throw new Error(`no ${tag} in the fixture layout`);
    return m;
  };
  const other = hostArch() === 'arm64' ? 'amd64' : 'arm64';
  const list = JSON.stringify({
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.index.v1+json',
    manifests: [
      { ...pick(byTag('base')), platform: { architecture: other, os: 'linux' } },
      { ...pick(byTag('app')), platform: { architecture: hostArch(), os: 'linux' } },
    ],
  });
  const hex = createHash('sha256').update(list).digest('hex');
  await writeFile(join(reg.layout, 'blobs', 'sha256', hex), list);
  index.manifests.push({
    mediaType: 'application/vnd.oci.image.index.v1+json',
    digest: `sha256:${hex}`,
    size: Buffer.byteLength(list),
    annotations: { 'org.opencontainers.image.ref.name': 'multi' },
  });
  await writeFile(join(reg.layout, 'index.json'), JSON.stringify(index));
  await run('skopeo', [
    'copy',
    '--quiet',
    '--all',
    '--dest-tls-verify=false',
    `oci:${reg.layout}:multi`,
    `docker://${reg.addr}/fixtures/multi:1`,
  ]);
}

function pick(m: { digest: string; size: number; mediaType: string }) {
  return { mediaType: m.mediaType, digest: m.digest, size: m.size };
}
