/**
 * Batches of writes and their translation to etcd transaction ops. Shared by
 * {@link fencedTxn} (per-op conditions, leader writes) and {@link atomicTxn} (all or nothing,
 * API writes).
 */
import type { ICompare, IRequestOp, IResponseOp } from 'etcd3';
import { StoreError } from './errors.js';
import type { RecordCodec } from './records.js';

/** etcd's default `--max-txn-ops`: the most ops one transaction may hold. */
export const MAX_TXN_OPS = 128;

/** A condition on one key, checked by etcd inside the transaction. */
export type OpCondition =
  /** The key does not exist (its create revision is 0). */
  | { readonly absent: true }
  /** The key's mod revision is exactly this (it was not changed since it was read). */
  | { readonly modRevision: bigint };

/** One write. `condition`, when set, must hold for this write to apply. */
export type BatchOp =
  | {
      readonly type: 'put';
      readonly key: string;
      readonly value: Buffer;
      readonly lease?: bigint;
      readonly condition?: OpCondition;
    }
  | { readonly type: 'delete'; readonly key: string; readonly condition?: OpCondition };

/** Options of a put in a batch. */
export interface BatchPutOptions {
  /** Attach the key to this lease (it disappears with the lease). */
  lease?: bigint;
}

/**
 * Collects writes in order. Each key may appear at most once in a batch (etcd rejects a
 * transaction that writes one key twice).
 *
 * @example
 *   fencedTxn(store, fence, (b) => b.putIfAbsent(keys.placement(m, name), json).delete(old));
 */
export class Batch {
  private readonly list: BatchOp[] = [];
  private readonly seen = new Set<string>();

  /** The ops in the order they were added. */
  get ops(): readonly BatchOp[] {
    return this.list;
  }

  get size(): number {
    return this.list.length;
  }

  /** Writes unconditionally. */
  put(key: string, value: string | Buffer, opts: BatchPutOptions = {}): this {
    return this.add(putOp(key, value, opts, undefined));
  }

  /** Writes an encoded record unconditionally. */
  putRecord<T>(codec: RecordCodec<T>, key: string, value: T, opts: BatchPutOptions = {}): this {
    return this.put(key, codec.encode(value), opts);
  }

  /** Creates the key only if it does not exist ("place only if not placed"). */
  putIfAbsent(key: string, value: string | Buffer, opts: BatchPutOptions = {}): this {
    return this.add(putOp(key, value, opts, { absent: true }));
  }

  /** Overwrites the key only if its mod revision is still `modRevision` (compare-and-swap). */
  putIfModRevision(
    key: string,
    value: string | Buffer,
    modRevision: bigint,
    opts: BatchPutOptions = {},
  ): this {
    return this.add(putOp(key, value, opts, { modRevision }));
  }

  /** Deletes unconditionally (a no-op when the key is absent). */
  delete(key: string): this {
    return this.add({ type: 'delete', key });
  }

  /** Deletes the key only if its mod revision is still `modRevision`. */
  deleteIfModRevision(key: string, modRevision: bigint): this {
    return this.add({ type: 'delete', key, condition: { modRevision } });
  }

  /** Adds `op`, or puts it in the place of this batch's op on the same key. */
  set(op: BatchOp): this {
    if (!this.seen.has(op.key)) return this.add(op);
    const at = this.list.findIndex((o) => o.key === op.key);
    this.list[at] = op;
    return this;
  }

  /** Adds a prepared op. */
  add(op: BatchOp): this {
    if (op.key === '') throw new StoreError('invalid', 'empty key in batch');
    if (this.seen.has(op.key)) {
      throw new StoreError('invalid', `key ${op.key} appears twice in one batch`, { key: op.key });
    }
    this.seen.add(op.key);
    this.list.push(op);
    return this;
  }
}

function putOp(
  key: string,
  value: string | Buffer,
  opts: BatchPutOptions,
  condition: OpCondition | undefined,
): BatchOp {
  return {
    type: 'put',
    key,
    value: typeof value === 'string' ? Buffer.from(value) : value,
    ...(opts.lease === undefined ? {} : { lease: opts.lease }),
    ...(condition === undefined ? {} : { condition }),
  };
}

/** The etcd compare for an op's condition. */
export function compareFor(key: string, condition: OpCondition): ICompare {
  return 'absent' in condition
    ? { key: Buffer.from(key), target: 'Create', result: 'Equal', create_revision: '0' }
    : {
        key: Buffer.from(key),
        target: 'Mod',
        result: 'Equal',
        mod_revision: condition.modRevision.toString(),
      };
}

/** The bare request op (condition ignored). */
export function requestFor(op: BatchOp): IRequestOp {
  const key = Buffer.from(op.key);
  if (op.type === 'delete') return { request_delete_range: { key } };
  return {
    request_put: {
      key,
      value: op.value,
      ...(op.lease === undefined ? {} : { lease: op.lease.toString() }),
    },
  };
}

/**
 * The request op applying `op` only where its condition holds: a nested transaction, whose
 * response says whether it applied. Unconditional ops are plain requests.
 */
export function guardedRequestFor(op: BatchOp): IRequestOp {
  if (op.condition === undefined) return requestFor(op);
  return {
    request_txn: {
      compare: [compareFor(op.key, op.condition)],
      success: [requestFor(op)],
      failure: [],
    },
  };
}

/** Whether the response to {@link guardedRequestFor}(op) says the op applied. */
export function appliedFrom(op: BatchOp, response: IResponseOp | undefined): boolean {
  if (op.condition === undefined) return true;
  return response?.response_txn?.succeeded === true;
}

/**
 * Splits ops into transactions etcd accepts: at most {@link MAX_TXN_OPS} each, and one fewer
 * when a chunk holds conditional ops (etcd counts a nested transaction against the limit of
 * the transaction it sits in).
 */
export function chunkOps(ops: readonly BatchOp[]): BatchOp[][] {
  const chunks: BatchOp[][] = [];
  let current: BatchOp[] = [];
  let conditional = false;
  for (const op of ops) {
    const nextConditional = conditional || op.condition !== undefined;
    const limit = nextConditional ? MAX_TXN_OPS - 1 : MAX_TXN_OPS;
    if (current.length + 1 > limit) {
      chunks.push(current);
      current = [];
      conditional = false;
    }
    current.push(op);
    conditional = conditional || op.condition !== undefined;
  }
  if (current.length > 0) chunks.push(current);
  return chunks;
}
