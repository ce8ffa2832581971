/**
 * Records an agent of an earlier version wrote under keys not keyed by machine first
 * (`states/<name>`, `states/<name>/<machine>`, `endpoints/<service>/<machine>/...`; see
 * store/keys.ts). They live under that agent's lease and go with it; an agent of this version
 * that starts on the same machine deletes them at once instead, so readers stop weighing them
 * against its own reports. Found through the old lease (etcd lists a lease's keys), never by
 * listing the cluster's states: the work is this machine's records, whatever the cluster holds.
 */
import { MAX_TXN_OPS } from './batch.js';
import { big, type Store } from './client.js';

/** Most keys of one lease looked at: an agent's records, with room to spare. */
const MAX_LEASE_KEYS = 100_000;

/** The lease of `key` now (0n when the key is absent or has none). */
export async function leaseOfKey(store: Store, key: string): Promise<bigint> {
  return (await store.get(key))?.lease ?? 0n;
}

/**
 * Deletes the legacy-layout records under `lease` (an earlier agent's of this machine) and
 * returns how many. A lease already gone holds nothing; an etcd role that may no longer read
 * or write the old directories makes this fail (StoreError): the records then go with the
 * lease, within its TTL.
 */
export async function deleteLegacyRecords(store: Store, lease: bigint): Promise<number> {
  if (lease === 0n) return 0;
  const res = await store.call(
    undefined,
    (c) => c.leaseClient.leaseTimeToLive({ ID: lease.toString(), keys: true }),
    'other',
  );
  if (big(res.TTL) <= 0n) return 0;
  const legacy = res.keys
    .slice(0, MAX_LEASE_KEYS)
    .map((k) => Buffer.from(k).toString('utf8'))
    .filter((k) => store.keys.parse(k)?.legacy === true);
  for (let i = 0; i < legacy.length; i += MAX_TXN_OPS) {
    const chunk = legacy.slice(i, i + MAX_TXN_OPS);
    await store.call(
      chunk[0],
      (c) =>
        c.kv.txn({
          success: chunk.map((k) => ({ request_delete_range: { key: Buffer.from(k) } })),
        }),
      'txn',
    );
  }
  return legacy.length;
}
