/**
 * The local cluster's secrets, in `<dir>/credentials/` (0700, files 0600, made once and kept
 * across `down` and `up` like the etcd data they unlock): etcd's `root` (for `flotilla
 * cluster` itself and operators' etcdctl), the schedulers' etcd user, one etcd user per
 * machine (store/etcd-auth.ts says what its role may touch), and the shared secret with which
 * the schedulers sign their requests to the agents' Logs services. No unit can read them: an
 * image-less container's rootfs binds only system directories and a few /etc files.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { chmod, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  enableEtcdAuth,
  ensureEtcdUser,
  machineGrants,
  openStore,
  parseEtcdUser,
  schedulerGrants,
  type EtcdUser,
  type StoreOptions,
} from '../../store/index.js';
import { etcdEndpoints, type AgentRecord, type ClusterRecord } from './state.js';

/** The etcd user of the schedulers. */
export const SCHEDULER_USER = 'flotilla-scheduler';

/** `<dir>/credentials/<file>`. */
export function credentialPath(record: Pick<ClusterRecord, 'dir'>, file: string): string {
  return join(record.dir, 'credentials', file);
}

/** The etcd credentials file of agent n. */
export function agentCredentialFile(agent: Pick<AgentRecord, 'index'>): string {
  return `agent-${agent.index}.etcd`;
}

/** The etcd user name of a machine. */
export function machineUser(agent: Pick<AgentRecord, 'machineId'>): string {
  return `machine-${agent.machineId}`;
}

async function ensureFile(path: string, content: () => string): Promise<void> {
  if (!existsSync(path)) await writeFile(path, content(), { mode: 0o600 });
  await chmod(path, 0o600);
}

const secret = (): string => randomBytes(24).toString('hex');

/** Makes the files the record's daemons need that do not exist yet; keeps the others. */
export async function writeCredentials(record: ClusterRecord): Promise<void> {
  const dir = join(record.dir, 'credentials');
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await chmod(dir, 0o700);
  await ensureFile(credentialPath(record, 'agent-token'), () => `${secret()}${secret()}\n`);
  // The cluster's secrets key (flotctl secret create seals with it, agents open with it).
  await ensureFile(
    credentialPath(record, 'secrets.key'),
    () => `${randomBytes(32).toString('hex')}\n`,
  );
  if (record.etcdAuth !== true) return;
  await ensureFile(credentialPath(record, 'root.etcd'), () => `root:${secret()}\n`);
  await ensureFile(
    credentialPath(record, 'scheduler.etcd'),
    () => `${SCHEDULER_USER}:${secret()}\n`,
  );
  for (const agent of record.agents) {
    await ensureFile(
      credentialPath(record, agentCredentialFile(agent)),
      () => `${machineUser(agent)}:${secret()}\n`,
    );
  }
}

function user(record: ClusterRecord, file: string): { name: string; password: string } {
  const auth = parseEtcdUser(readFileSync(credentialPath(record, file), 'utf8'));
  return { name: auth.username, password: auth.password };
}

/**
 * How a process on the host reaches the cluster's etcd: its endpoints and prefix, and root's
 * credentials when etcd auth is on. For `flotilla cluster` itself and the tests.
 */
export function clusterStoreOptions(record: ClusterRecord): StoreOptions {
  const base = { endpoints: etcdEndpoints(record), prefix: record.prefix };
  if (record.etcdAuth !== true) return base;
  const root = user(record, 'root.etcd');
  return { ...base, auth: { username: root.name, password: root.password } };
}

/** The etcd user of `agent`, with its machine's grants. */
function agentUser(record: ClusterRecord, agent: AgentRecord): EtcdUser {
  const { name, password } = user(record, agentCredentialFile(agent));
  return { name, password, grants: machineGrants(agent.machineId) };
}

/**
 * Turns on etcd's auth with the record's users, or, when an earlier `up` already did (the
 * etcd data is kept across `down`), makes sure every user exists as root.
 */
export async function setupEtcdAuth(record: ClusterRecord): Promise<void> {
  if (record.etcdAuth !== true) return;
  const sched = user(record, 'scheduler.etcd');
  const users: EtcdUser[] = [
    { ...sched, grants: schedulerGrants() },
    ...record.agents.map((a) => agentUser(record, a)),
  ];
  const anonymous = openStore({ endpoints: etcdEndpoints(record), prefix: record.prefix });
  try {
    await enableEtcdAuth(anonymous, user(record, 'root.etcd').password, users);
    return;
  } catch (err) {
    // Auth already on: without a token every call is refused. Anything else is real.
    if (!/user name is empty|permission denied|invalid auth token/i.test(String(err))) throw err;
  } finally {
    anonymous.close();
  }
  const root = openStore(clusterStoreOptions(record));
  try {
    for (const u of users) await ensureEtcdUser(root, u);
  } finally {
    root.close();
  }
}

/** Creates (or refreshes) the etcd user of an agent added to a running cluster. */
export async function addMachineUser(record: ClusterRecord, agent: AgentRecord): Promise<void> {
  if (record.etcdAuth !== true) return;
  const root = openStore(clusterStoreOptions(record));
  try {
    await ensureEtcdUser(root, agentUser(record, agent));
  } finally {
    root.close();
  }
}
