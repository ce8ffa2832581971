/**
 * Network numbers for test clusters in network namespaces (bridge `flotbr<N>`, 10.213.N.0/24,
 * namespaces `flot-<name>-<n>`), so that two test runs on one host never share one. A test
 * file asks for the number it prefers and gets it unless another live run holds it, else a
 * spare (with the cluster name suffixed by the number, so namespaces differ too).
 *
 * A lease is a directory `/run/flotilla-test-nets/<N>` (mkdir is atomic) holding the holder's
 * pid; a lease whose holder is gone is taken over. Released when the cluster stops; a test
 * process that dies leaves it for the next run to take over.
 */
import { mkdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { linkExists } from '../deploy/cluster/network.js';

const LEASES = '/run/flotilla-test-nets';
/** Numbers no test file prefers: taken when a file's own is held by another run. */
const SPARE = Array.from({ length: 15 }, (_, i) => 240 + i);
/** A lease younger than this without a pid is being written, not abandoned. */
const WRITING_MS = 10_000;

/** A network number (and the cluster name to use with it) held for this process. */
export interface NetLease {
  readonly net: number;
  readonly name: string;
  release(): Promise<void>;
}

/** Leases `preferred`, or a spare when another live run holds it. */
export async function leaseNet(name: string, preferred: number): Promise<NetLease> {
  await mkdir(LEASES, { recursive: true });
  for (const net of [preferred, ...SPARE]) {
    if (!(await take(net))) continue;
    const release = () => rm(join(LEASES, String(net)), { recursive: true, force: true });
    // A bridge of that number that no live run holds belongs to something else: leave it be.
    if (await linkExists(`flotbr${net}`)) {
      await release();
      continue;
    }
    return { net, name: net === preferred ? name : `${name}${net}`, release };
  }
  throw new Error(
    `no free test network: ${preferred} and ${SPARE[0]}-${SPARE.at(-1)} are all held (${LEASES}); stop the other test runs or remove stale leases`,
  );
}

async function take(net: number): Promise<boolean> {
  const dir = join(LEASES, String(net));
  if (!(await made(dir))) {
    if (await isHeld(dir)) return false;
    await rm(dir, { recursive: true, force: true });
    if (!(await made(dir))) return false; // another run took it over first
  }
  await writeFile(join(dir, 'pid'), String(process.pid));
  return true;
}

async function made(dir: string): Promise<boolean> {
  try {
    await mkdir(dir);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw err;
  }
}

/** Whether the lease at `dir` has a live holder (or is being written right now). */
async function isHeld(dir: string): Promise<boolean> {
  const pid = Number((await readFile(join(dir, 'pid'), 'utf8').catch(() => '')).trim());
  if (!(pid > 0)) {
    const age = await stat(dir).then(
      (s) => Date.now() - s.mtimeMs,
      () => Infinity,
    );
    return age < WRITING_MS;
  }
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
