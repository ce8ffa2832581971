/**
 * The local cluster's image registry: Debian's `docker-registry` beside etcd, its storage in
 * the cluster directory, listening where the agents reach it (the bridge address in netns
 * mode, which processes on the host reach as well; 127.0.0.1 in loopback mode). Schedulers
 * and agents are started with `--insecure-registry` for it (it speaks plain HTTP), and `up`
 * pushes one example image built offline from busybox-static, when umoci and skopeo are there.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pushExampleImage } from '../images/build.js';
import { registryConfig, waitForRegistry } from '../images/registry-server.js';
import { isRunning, logTail, which } from './proc.js';
import { ClusterError, type ClusterRecord, type ProcessRecord } from './state.js';

/**
 * The registry the shipped examples name (`deploy/examples/images/`). In netns mode the
 * cluster's registry listens at the bridge address instead, so schedulers and agents get
 * `--registry-mirror` from this to it, and the examples run as shipped.
 */
export const EXAMPLE_REGISTRY = '127.0.0.1:5000';

/** Flags that let schedulers and agents reach the cluster's registry at `addr`. */
export function registryFlagsFor(addr: string): string[] {
  return [
    `--insecure-registry=${addr}`,
    ...(addr === EXAMPLE_REGISTRY ? [] : [`--registry-mirror=${EXAMPLE_REGISTRY}=${addr}`]),
  ];
}

/** The registry's process record (its config file is written by {@link prepareRegistry}). */
export function registryProcess(record: ClusterRecord): ProcessRecord {
  return {
    name: 'registry',
    role: 'registry',
    command: ['docker-registry', 'serve', join(record.dir, 'registry', 'config.yml')],
    logPath: join(record.dir, 'logs', 'registry.log'),
  };
}

/** True when Debian's docker-registry is installed. */
export async function hasRegistry(): Promise<boolean> {
  return (await which('docker-registry')) !== undefined;
}

/** Writes the registry's configuration: `addr`, storage in `<dir>/registry/storage`. */
export async function prepareRegistry(record: ClusterRecord, addr: string): Promise<void> {
  const dir = join(record.dir, 'registry');
  await mkdir(join(dir, 'storage'), { recursive: true });
  await writeFile(join(dir, 'config.yml'), registryConfig(addr, join(dir, 'storage')));
}

/** Waits until the registry answers; `start-failed` with its log's tail when it does not. */
export async function waitRegistry(
  addr: string,
  proc: ProcessRecord,
  timeoutMs: number,
): Promise<void> {
  try {
    await waitForRegistry(addr, timeoutMs);
  } catch {
    const why = (await isRunning(proc)) ? `it does not answer at ${addr}` : 'it exited';
    throw new ClusterError(
      'start-failed',
      `the registry did not start: ${why}\n${await logTail(proc.logPath)}`,
    );
  }
}

/**
 * Pushes the example image (`<addr>/examples/busybox:1`) unless umoci or skopeo is missing;
 * returns what to say.
 */
export async function pushExample(record: ClusterRecord, addr: string): Promise<string> {
  for (const tool of ['umoci', 'skopeo']) {
    if ((await which(tool)) === undefined)
      return `example image not built: ${tool} is not installed`;
  }
  const ref = await pushExampleImage(join(record.dir, 'registry'), addr);
  return `example image ${ref}`;
}
