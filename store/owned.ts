/**
 * Owned records: keys that several writers may hold in turn, each under its own lease (an
 * agent's `unit-states/<machine>/<name>`, written again by the same machine's agent under each
 * new lease, and by the old one until it learns its lease is gone). A writer may put
 * or delete such a record only while it is its own, decided by etcd inside the transaction,
 * never by a writer's possibly stale view:
 *
 * - the record is under the writer's lease (it wrote it and nobody has written since), or
 * - for a put, a `claim` key exists (`placements/<machine>/<name>`: the unit is placed on the
 *   writer's machine now, so the record is the writer's to take over).
 *
 * A writer that lost the record (cut off while its unit moved, and back under a new lease)
 * thus writes nothing over the new owner's. {@link changedRecords} tells an owner which of
 * its records someone else has deleted or overwritten since, so it can put them back.
 */
import type { ICompare, IRequestOp, IResponseOp } from 'etcd3';
import { MAX_TXN_OPS } from './batch.js';
import { big, type Store } from './client.js';
import { StoreError } from './errors.js';

/** One write of an owned record; see the module comment for when it applies. */
export type OwnedOp =
  | {
      readonly type: 'put';
      readonly key: string;
      readonly value: string | Buffer;
      /** The writer's lease: the record is written under it, and is the writer's while under it. */
      readonly lease: bigint;
      /** While this key exists, the record is the writer's whatever lease it is under. */
      readonly claim?: string;
    }
  | { readonly type: 'delete'; readonly key: string; readonly lease: bigint };

/** What {@link writeOwned} did. */
export interface OwnedResult {
  /** `applied[i]`: whether `ops[i]` took effect (the record was the writer's). */
  readonly applied: readonly boolean[];
  /** The transaction's revision: the mod revision of every applied put. */
  readonly revision: bigint;
}

/**
 * Applies `ops` in ONE transaction, each only where its record is the writer's. Ops on
 * records that are not are skipped silently (see `applied`); a put under a lease etcd no
 * longer has fails the whole transaction with StoreError `lease-lost`. At most
 * {@link MAX_TXN_OPS} ops (StoreError `invalid` beyond), each key once.
 *
 * @example
 *   const { applied, revision } = await writeOwned(store, [
 *     { type: 'put', key: keys.state(me, name), value, lease, claim: keys.placement(me, name) },
 *   ]);
 */
export async function writeOwned(store: Store, ops: readonly OwnedOp[]): Promise<OwnedResult> {
  if (ops.length === 0) return { applied: [], revision: 0n };
  if (ops.length > MAX_TXN_OPS) {
    throw new StoreError('invalid', `${ops.length} ops exceed ${MAX_TXN_OPS} per transaction`);
  }
  const res = await store.call(
    ops[0]?.key,
    (c) => c.kv.txn({ success: ops.map(requestFor) }),
    'txn',
  );
  return {
    applied: ops.map((op, i) => appliedFrom(op, res.responses[i])),
    revision: big(res.header.revision),
  };
}

/**
 * The keys of `expected` (key -> the mod revision its owner last wrote) whose record has been
 * deleted or written by anyone since. One read-only transaction per {@link MAX_TXN_OPS} keys
 * that only compares while nothing changed, so an owner can check its records often.
 */
export async function changedRecords(
  store: Store,
  expected: ReadonlyMap<string, bigint>,
): Promise<string[]> {
  const changed: string[] = [];
  const entries = [...expected];
  for (let i = 0; i < entries.length; i += MAX_TXN_OPS) {
    const chunk = entries.slice(i, i + MAX_TXN_OPS);
    const res = await store.call(
      chunk[0]?.[0],
      (c) =>
        c.kv.txn({
          compare: chunk.map(([key, rev]) => modEquals(key, rev)),
          success: [],
          failure: chunk.map(([key]) => ({
            request_range: { key: Buffer.from(key), keys_only: true },
          })),
        }),
      'txn',
    );
    if (res.succeeded) continue;
    chunk.forEach(([key, rev], j) => {
      const kv = res.responses[j]?.response_range?.kvs[0];
      if (kv === undefined || big(kv.mod_revision) !== rev) changed.push(key);
    });
  }
  return changed;
}

function modEquals(key: string, revision: bigint): ICompare {
  return {
    key: Buffer.from(key),
    target: 'Mod',
    result: 'Equal',
    mod_revision: revision.toString(),
  };
}

function underLease(key: string, lease: bigint): ICompare {
  return { key: Buffer.from(key), target: 'Lease', result: 'Equal', lease: lease.toString() };
}

function exists(key: string): ICompare {
  return { key: Buffer.from(key), target: 'Create', result: 'Greater', create_revision: '0' };
}

/** `op` guarded by "under the writer's lease", or else by "the claim key exists". */
function requestFor(op: OwnedOp): IRequestOp {
  const key = Buffer.from(op.key);
  const write: IRequestOp =
    op.type === 'delete'
      ? { request_delete_range: { key } }
      : {
          request_put: {
            key,
            value: typeof op.value === 'string' ? Buffer.from(op.value) : op.value,
            lease: op.lease.toString(),
          },
        };
  const ifOurs: IRequestOp = {
    request_txn: { compare: [underLease(op.key, op.lease)], success: [write], failure: [] },
  };
  if (op.type === 'delete' || op.claim === undefined) return ifOurs;
  return { request_txn: { compare: [exists(op.claim)], success: [write], failure: [ifOurs] } };
}

function appliedFrom(op: OwnedOp, response: IResponseOp | undefined): boolean {
  const outer = response?.response_txn;
  if (outer === undefined) return false;
  if (outer.succeeded) return true;
  if (op.type === 'delete' || op.claim === undefined) return false;
  return outer.responses[0]?.response_txn?.succeeded === true;
}
