/**
 * Images built offline from the host's busybox-static with umoci, and pushed with skopeo: the
 * quickstart's example image and the tests' fixtures. Nothing is downloaded. umoci is only
 * needed here (building), never by agents.
 */
import { spawn } from 'node:child_process';
import { copyFile, mkdir, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

/** What a build or push step ran into. */
export class ImageBuildError extends Error {
  override readonly name = 'ImageBuildError';
}

/** busybox applets the images link (enough for shells, httpd, sleep loops and tests). */
const APPLETS = [
  'sh',
  'cat',
  'echo',
  'ls',
  'sleep',
  'httpd',
  'wget',
  'test',
  'true',
  'false',
  'id',
  'env',
  'pwd',
  'rm',
  'mkdir',
  'touch',
  'df',
  'du',
  'stat',
  'head',
];

/** Runs `argv`; rejects with its stderr when it fails or runs over `timeoutMs`. */
export function run(argv: readonly string[], timeoutMs = 120_000, cwd?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const [cmd = '', ...args] = argv;
    const child = spawn(cmd, args, {
      stdio: ['ignore', 'pipe', 'pipe'],
      ...(cwd !== undefined ? { cwd } : {}),
    });
    let out = '';
    let err = '';
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.stdout.on('data', (c: Buffer) => (out = (out + c.toString()).slice(-65536)));
    child.stderr.on('data', (c: Buffer) => (err = (err + c.toString()).slice(-8192)));
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(new ImageBuildError(`${cmd} cannot be run: ${e.message}`));
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      if (code === 0) resolve(out);
      else
        reject(
          new ImageBuildError(
            `${argv.slice(0, 3).join(' ')} failed (${code}): ${err.trim().slice(-500)}`,
          ),
        );
    });
  });
}

/** An edit of an image's root filesystem (the unpacked bundle's rootfs). */
export type RootfsEdit = (rootfs: string) => Promise<void>;

/**
 * Makes tag `to` in the OCI layout `layout`: `from`'s layers (a new empty image when null)
 * plus one layer with what `edit` changed, and config `cmd`/`env` when given.
 */
export async function buildImage(
  layout: string,
  from: string | null,
  to: string,
  edit: RootfsEdit,
  config: { cmd?: readonly string[]; env?: readonly string[] } = {},
): Promise<void> {
  const bundle = `${layout}.bundle-${to}`;
  await rm(bundle, { recursive: true, force: true });
  const source = from ?? to;
  if (from === null) await run(['umoci', 'new', '--image', `${layout}:${to}`]);
  await run(['umoci', 'unpack', '--image', `${layout}:${source}`, bundle]);
  try {
    await edit(join(bundle, 'rootfs'));
    await run(['umoci', 'repack', '--image', `${layout}:${to}`, bundle]);
  } finally {
    await rm(bundle, { recursive: true, force: true });
  }
  const args = ['umoci', 'config', '--image', `${layout}:${to}`, '--tag', to];
  if (config.cmd !== undefined) for (const c of config.cmd) args.push('--config.cmd', c);
  if (config.env !== undefined) for (const e of config.env) args.push('--config.env', e);
  if (config.cmd !== undefined || config.env !== undefined) await run(args);
}

/** A root filesystem with busybox-static and its applets in /bin, /etc/passwd and /tmp. */
export const busyboxRoot: RootfsEdit = async (rootfs) => {
  for (const dir of ['bin', 'etc', 'tmp', 'www'])
    await mkdir(join(rootfs, dir), { recursive: true });
  await copyFile('/bin/busybox', join(rootfs, 'bin', 'busybox'));
  for (const applet of APPLETS) await symlink('busybox', join(rootfs, 'bin', applet));
  await writeFile(
    join(rootfs, 'etc', 'passwd'),
    'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/sh\n',
  );
  await writeFile(join(rootfs, 'etc', 'group'), 'root:x:0:\nnogroup:x:65534:\n');
  await writeFile(join(rootfs, 'www', 'index.html'), 'hello from an image\n');
};

/** `tag` of the OCI layout `layout` pushed as `dest` (`host:port/repo:tag`). */
export async function pushImage(
  layout: string,
  tag: string,
  dest: string,
  insecure: boolean,
  login?: { readonly user: string; readonly password: string },
): Promise<void> {
  const tls = insecure ? ['--dest-tls-verify=false'] : [];
  const creds = login !== undefined ? ['--dest-creds', `${login.user}:${login.password}`] : [];
  await run([
    'skopeo',
    'copy',
    '--quiet',
    ...tls,
    ...creds,
    `oci:${layout}:${tag}`,
    `docker://${dest}`,
  ]);
}

/** A new OCI layout at `layout` (replacing any). */
export async function initLayout(layout: string): Promise<void> {
  await rm(layout, { recursive: true, force: true });
  await run(['umoci', 'init', '--layout', layout]);
}

/**
 * The quickstart's example image: busybox-static, `httpd` serving /www on port 8090 by
 * default. Built into `workDir` and pushed to `registry` (plain HTTP) as
 * `examples/busybox:1`. Returns the reference.
 */
export async function pushExampleImage(workDir: string, registry: string): Promise<string> {
  const layout = join(workDir, 'example-layout');
  await initLayout(layout);
  await buildImage(layout, null, 'busybox', busyboxRoot, {
    cmd: ['httpd', '-f', '-p', '8090', '-h', '/www'],
    env: ['PATH=/bin'],
  });
  const ref = `${registry}/examples/busybox:1`;
  await pushImage(layout, 'busybox', ref, true);
  await rm(layout, { recursive: true, force: true });
  return ref;
}
