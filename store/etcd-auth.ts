/**
 * etcd's own authentication for a Flotilla cluster: a `root` user (required by etcd before
 * auth can be enabled; operators and `flotilla cluster` use it), one user for the schedulers
 * with read and write on the cluster's prefix, and one user per machine whose role grants
 * only what an agent needs. Roles are key ranges, so what a machine's role can confine is
 * what is keyed by machine:
 *
 * | range                         | agent of machine M        | why                               |
 * | ----------------------------- | ------------------------- | --------------------------------- |
 * | `machines/M`                  | read and write            | its presence record               |
 * | `placements/M/`               | read                      | what to run                       |
 * | `units/`                      | read                      | the files of what it runs         |
 * | `instance-counts/`            | read                      | the same, of counted instances    |
 * | `unit-states/M/`              | read and write            | the states of what it runs        |
 * | `unit-endpoints/M/`           | read and write            | the endpoints of what it runs     |
 * | `unit-endpoints/`             | read                      | what the mesh and DNS route to    |
 * | `endpoints/`                  | read                      | the same, from agents not upgraded|
 * | `services/`                   | read                      | what the mesh publishes           |
 * | `secrets/`                    | read                      | what its units name (`Secret=`)   |
 *
 * Everything an agent writes is keyed by its machine first (store/keys.ts), so a machine's
 * credentials cannot forge another machine's presence, any unit's state, or any service's
 * endpoints. `secrets/` cannot be narrowed to the secrets of the units a machine runs (roles
 * are key ranges; placements change faster than roles): any agent may read every sealed
 * record, and without the secrets key a record opens to nothing. Every other key of the
 * cluster (units' desired states, placements of other machines, the election, the policy's
 * records) is out of an agent's reach, and the whole keyspace out of a unit's.
 *
 * Roles made by an earlier version also grant read and write on all of `states/` and
 * `endpoints/` (where its agents wrote): {@link ensureEtcdUser} revokes them, so it runs once
 * every agent of the role runs this version (docs/operations.md, "Security model").
 */
import { Range } from 'etcd3';
import type { Store, StoreAuth } from './client.js';
import { toStoreError } from './errors.js';

/** One permission of a role: a key (exact) or a prefix, relative to the cluster prefix. */
export interface EtcdGrant {
  readonly permission: 'Read' | 'Write' | 'Readwrite';
  /** Relative to the cluster prefix; ends with `/` for a prefix, else an exact key. */
  readonly key: string;
}

/** A user to make, with its own role of the same name. */
export interface EtcdUser {
  readonly name: string;
  readonly password: string;
  readonly grants: readonly EtcdGrant[];
}

/** `user:password`, etcdctl's `--user` form, as a credentials file holds it. */
export function parseEtcdUser(text: string): StoreAuth {
  const line = text.trim();
  const colon = line.indexOf(':');
  if (colon <= 0 || colon === line.length - 1 || /\s/.test(line)) {
    throw new Error('expected one line user:password (etcdctl --user form)');
  }
  return { username: line.slice(0, colon), password: line.slice(colon + 1) };
}

/** The schedulers' grants: the whole cluster prefix. */
export function schedulerGrants(): EtcdGrant[] {
  return [{ permission: 'Readwrite', key: '' }];
}

/** An agent's grants (the table above); `machine` is its machine id. */
export function machineGrants(machine: string): EtcdGrant[] {
  return [
    { permission: 'Readwrite', key: `machines/${machine}` },
    { permission: 'Read', key: `placements/${machine}/` },
    { permission: 'Read', key: 'units/' },
    { permission: 'Read', key: 'instance-counts/' },
    { permission: 'Readwrite', key: `unit-states/${machine}/` },
    { permission: 'Readwrite', key: `unit-endpoints/${machine}/` },
    { permission: 'Read', key: 'unit-endpoints/' },
    { permission: 'Read', key: 'endpoints/' },
    { permission: 'Read', key: 'services/' },
    { permission: 'Read', key: 'secrets/' },
  ];
}

/** A grant's key range: a prefix for keys ending in `/` (or the whole prefix), else one key. */
function rangeOf(prefix: string, g: EtcdGrant): Range {
  const key = `${prefix}${g.key}`;
  return g.key === '' || g.key.endsWith('/') ? Range.prefix(key) : new Range(key);
}

function sameRange(a: Range, b: Range): boolean {
  return a.start.equals(b.start) && a.end.equals(b.end);
}

function isExists(err: unknown): boolean {
  return /already exists/i.test(err instanceof Error ? err.message : String(err));
}

/**
 * Creates `user` and its role (both named `user.name`) with its grants under the store's
 * prefix; an existing user or role is kept, its password set to the one given, and its role
 * left with exactly these grants: a grant an earlier version made and this one does not (all
 * of `states/` for a machine) is revoked, so run it once every daemon using the role runs this
 * version (`flotilla cluster up` restarts them all). Needs a store authenticated as root (or
 * auth still off).
 */
export async function ensureEtcdUser(store: Store, user: EtcdUser): Promise<void> {
  const client = store.client;
  const prefix = store.keys.prefix;
  try {
    const role = client.role(user.name);
    await role.create().catch((err: unknown) => {
      if (!isExists(err)) throw err;
    });
    const wanted = user.grants.map((g) => ({
      permission: g.permission,
      range: rangeOf(prefix, g),
    }));
    for (const g of wanted) await role.grant(g);
    for (const { range } of await role.permissions()) {
      // Only under this cluster's prefix: a role may hold grants of another cluster's.
      if (!range.start.toString('utf8').startsWith(prefix)) continue;
      if (wanted.some((w) => sameRange(w.range, range))) continue;
      await role.revoke({ permission: 'Readwrite', range });
    }
    const account = client.user(user.name);
    await account.create(user.password).catch(async (err: unknown) => {
      if (!isExists(err)) throw err;
      await account.setPassword(user.password);
    });
    await account.addRole(user.name);
  } catch (err) {
    throw toStoreError(err);
  }
}

/**
 * Turns etcd's authentication on: `root` (with the root role) with `rootPassword`, then
 * `users`, then auth. Run once, on a fresh etcd, with a store that has no credentials; an
 * etcd whose auth is already on is left as it is (call {@link ensureEtcdUser} as root).
 */
export async function enableEtcdAuth(
  store: Store,
  rootPassword: string,
  users: readonly EtcdUser[],
): Promise<void> {
  const client = store.client;
  try {
    const root = client.user('root');
    await root.create(rootPassword).catch((err: unknown) => {
      if (!isExists(err)) throw err;
    });
    await root.addRole('root').catch((err: unknown) => {
      // etcd makes the root role on first use; an older etcd wants it made first.
      if (!/role not found/i.test(String(err))) throw err;
    });
    for (const user of users) await ensureEtcdUser(store, user);
    await client.auth.authEnable({});
  } catch (err) {
    throw toStoreError(err);
  }
}
