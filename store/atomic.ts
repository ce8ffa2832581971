/**
 * All-or-nothing transactions, for API writes: "a submit of many units is one transaction; a
 * rejected request changes nothing". Conditions of ops are guards of the whole transaction.
 */
import type { ICompare } from 'etcd3';
import { Batch, compareFor, MAX_TXN_OPS, requestFor, type BatchOp } from './batch.js';
import { big, toKeyValue, type KeyValue, type Store } from './client.js';
import { StoreError } from './errors.js';
import { fenceCompare, FencedError, type BatchResult, type Fence } from './fenced.js';
import { heldNow } from './held.js';

/**
 * A guard did not hold, so nothing was written. `conflicts` lists the keys whose condition
 * failed, with what they hold now (undefined when absent).
 */
export class ConflictError extends StoreError {
  constructor(readonly conflicts: ReadonlyArray<{ key: string; current: KeyValue | undefined }>) {
    const keys = conflicts.map((c) => c.key).join(', ');
    const first = conflicts[0]?.key;
    super(
      'conflict',
      `condition failed for ${keys || 'a key'}`,
      first === undefined ? {} : { key: first },
    );
    this.name = 'ConflictError';
  }
}

/** Options of {@link atomicTxn}. */
export interface AtomicOptions {
  /** Also require this fence (a leader's all-or-nothing write). */
  fence?: Fence;
  /**
   * Also require that this key, not written here, is still at this mod revision: a lock taken
   * by writing it, held as long as nobody writes it again. A failure names it in the
   * ConflictError's `conflicts` like any other key.
   */
  unchanged?: { readonly key: string; readonly modRevision: bigint };
}

/**
 * Applies every op of the batch `build` fills in ONE transaction, only if every op's condition
 * holds; otherwise writes nothing and throws {@link ConflictError} (code `conflict`) naming
 * the keys at fault. More than 128 ops is StoreError `invalid`, as one transaction cannot hold
 * them. With `fence`, a stale fence is {@link FencedError}.
 *
 * @example
 *   await atomicTxn(store, (b) => units.forEach((u) => b.putIfAbsent(keys.unit(u.name), encode(u))));
 */
export async function atomicTxn(
  store: Store,
  build: (batch: Batch) => unknown,
  opts: AtomicOptions = {},
): Promise<BatchResult> {
  const batch = new Batch();
  build(batch);
  const ops = batch.ops;
  if (ops.length === 0) return { ops, applied: [], revision: 0n, transactions: 0 };
  if (ops.length > MAX_TXN_OPS) {
    throw new StoreError('invalid', `${ops.length} ops exceed ${MAX_TXN_OPS} per transaction`);
  }
  const guarded: readonly Pick<BatchOp, 'key' | 'condition'>[] = [
    ...ops.filter((op) => op.condition !== undefined),
    ...(opts.unchanged === undefined
      ? []
      : [{ key: opts.unchanged.key, condition: { modRevision: opts.unchanged.modRevision } }]),
  ];
  const compare: ICompare[] = guarded.map((op) => compareFor(op.key, conditionOf(op)));
  if (opts.fence !== undefined) compare.unshift(fenceCompare(opts.fence));
  if (compare.length > MAX_TXN_OPS) {
    throw new StoreError('invalid', `${compare.length} conditions exceed ${MAX_TXN_OPS}`);
  }
  const probes = [...guarded.map((op) => op.key), ...(opts.fence ? [opts.fence.key] : [])];
  const { value: res, resent } = await store.callResending(
    probes[0],
    (c) =>
      c.kv.txn({
        compare,
        success: ops.map(requestFor),
        failure: probes.map((key) => ({
          request_range: { key: Buffer.from(key), keys_only: true },
        })),
      }),
    'txn',
  );
  if (res.succeeded) {
    return {
      ops,
      applied: ops.map(() => true),
      revision: big(res.header.revision),
      transactions: 1,
    };
  }
  // Sent again after a raft leader change: the first attempt may have applied it, and then
  // this one found its guards no longer holding. What etcd holds now says which.
  const earlier = resent > 0 ? await appliedAlready(store, ops) : undefined;
  if (earlier !== undefined) {
    return { ops, applied: ops.map(() => true), revision: earlier, transactions: 1 };
  }
  const current = new Map<string, KeyValue | undefined>();
  probes.forEach((key, i) => {
    const kv = res.responses[i]?.response_range?.kvs[0];
    current.set(key, kv === undefined ? undefined : toKeyValue(kv));
  });
  if (opts.fence !== undefined) {
    const now = current.get(opts.fence.key)?.createRevision ?? 0n;
    if (now !== opts.fence.revision) throw new FencedError(opts.fence, now, 0);
  }
  const conflicts = guarded
    .filter((op) => !holds(conditionOf(op), current.get(op.key)))
    .map((op) => ({ key: op.key, current: current.get(op.key) }));
  throw new ConflictError(conflicts);
}

/**
 * The revision at which etcd holds exactly what `ops` write (every put's value and lease,
 * every delete's absence), or undefined when it does not: then the transaction did not apply.
 */
export async function appliedAlready(
  store: Store,
  ops: readonly BatchOp[],
): Promise<bigint | undefined> {
  const { revision, held } = await heldNow(store, ops);
  return held.every(Boolean) ? revision : undefined;
}

function conditionOf(op: Pick<BatchOp, 'condition'>): NonNullable<BatchOp['condition']> {
  if (op.condition === undefined) throw new Error('unreachable: op has no condition');
  return op.condition;
}

function holds(condition: NonNullable<BatchOp['condition']>, kv: KeyValue | undefined): boolean {
  if ('absent' in condition) return kv === undefined;
  return kv !== undefined && kv.modRevision === condition.modRevision;
}
