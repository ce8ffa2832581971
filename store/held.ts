/**
 * What etcd holds now of a batch's writes: for each op, whether its key has exactly what the
 * op writes (a put's value and lease) or lacks it (a delete). Used after a transaction was sent
 * again across a raft leader change (resend.ts): its first attempt may have applied, and the
 * second then reports guards that no longer hold, or ops that did not apply, for writes that
 * are in etcd. A concurrent writer of the very same values cannot be told from this one;
 * either way the records are as the caller asked.
 */
import type { BatchOp } from './batch.js';
import { big, type Store } from './client.js';

/** Per op of a batch, whether etcd holds its outcome, as of `revision`. */
export interface Held {
  readonly revision: bigint;
  readonly held: readonly boolean[];
}

/** Reads every op's key in one read-only transaction (at most as many ops as one batch). */
export async function heldNow(store: Store, ops: readonly BatchOp[]): Promise<Held> {
  const { value: res } = await store.callResending(
    ops[0]?.key,
    (c) =>
      c.kv.txn({
        compare: [],
        success: ops.map((op) => ({ request_range: { key: Buffer.from(op.key) } })),
        failure: [],
      }),
    'txn',
  );
  const held = ops.map((op, i) => {
    const kv = res.responses[i]?.response_range?.kvs[0];
    if (op.type === 'delete') return kv === undefined;
    return kv !== undefined && kv.value.equals(op.value) && big(kv.lease) === (op.lease ?? 0n);
  });
  return { revision: big(res.header.revision), held };
}
