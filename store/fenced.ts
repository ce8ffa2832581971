/**
 * Fenced transactions: the leader's only way to write. Every transaction also compares the
 * create revision of the leader's election key with the revision the leader saw when it won,
 * so a deposed leader (its key deleted, or a new term's key in its place) writes nothing.
 */
import type { ICompare, IRequestOp, ITxnResponse } from 'etcd3';
import {
  appliedFrom,
  Batch,
  chunkOps,
  compareFor,
  guardedRequestFor,
  requestFor,
  type BatchOp,
  type OpCondition,
} from './batch.js';
import { big, type Store } from './client.js';
import { StoreError } from './errors.js';
import type { AimdWindow } from './aimd.js';
import { heldNow } from './held.js';
import { pool } from '../lib/pool.js';

/** Identifies one leader term: the election key and its create revision. */
export interface Fence {
  readonly key: string;
  /** The election key's create revision (also used as the leader epoch in placements). */
  readonly revision: bigint;
}

/** What a batch did. `applied[i]` is whether `ops[i]` took effect (its condition held). */
export interface BatchResult {
  readonly ops: readonly BatchOp[];
  readonly applied: readonly boolean[];
  /** The revision of the last transaction (0n when the batch was empty). */
  readonly revision: bigint;
  /** How many transactions were committed. */
  readonly transactions: number;
}

/**
 * A fenced write was refused: the fence no longer holds. `committedOps` ops of the batch were
 * written by earlier transactions of the same call (0 unless the batch was split and the
 * leader was deposed between parts).
 */
export class FencedError extends StoreError {
  constructor(
    readonly fence: Fence,
    /** The election key's create revision now (0n when it is gone). */
    readonly currentRevision: bigint,
    readonly committedOps: number,
  ) {
    super(
      'fenced',
      `fence ${fence.key}@${fence.revision} no longer holds (now ${currentRevision === 0n ? 'absent' : `@${currentRevision}`}); ${committedOps} ops committed before`,
      { key: fence.key },
    );
    this.name = 'FencedError';
  }
}

/** The compare that holds only while `fence` is the current term. */
export function fenceCompare(fence: Fence): ICompare {
  return {
    key: Buffer.from(fence.key),
    target: 'Create',
    result: 'Equal',
    create_revision: fence.revision.toString(),
  };
}

/** Reads the fence for an election key this process holds, or undefined when it is absent. */
export async function readFence(store: Store, key: string): Promise<Fence | undefined> {
  const kv = await store.get(key);
  return kv === undefined ? undefined : { key, revision: kv.createRevision };
}

/** How {@link fencedTxn} paces its transactions. */
export interface FencedTxnOptions {
  /** Transactions in flight at once, without a window. Default 1. */
  readonly inFlight?: number;
  /** As many in flight as etcd's latency allows (store/aimd.ts); wins over `inFlight`. */
  readonly window?: AimdWindow;
  /**
   * Called before each transaction after the first with the highest revision this call
   * has written so far; the transaction waits for it (a writer keeping pace with a reader).
   */
  readonly keepUp?: (written: bigint) => Promise<void>;
}

/**
 * Applies the batch `build` fills (or `build` itself: ops already known to name each key
 * once, as the leader's commit decides them, so 100,000 need not be checked again in one
 * turn), each op under its own condition, in transactions of at
 * most 128 ops that each compare `fence` first. Resolves with which ops applied; throws
 * {@link FencedError} (code `fenced`) as soon as a transaction finds the fence stale, and
 * that transaction writes nothing.
 *
 * @example
 *   const result = await fencedTxn(store, fence, (b) => {
 *     for (const p of decisions) b.putIfAbsent(keys.placement(p.machine, p.unit), encode(p));
 *   });
 */
export async function fencedTxn(
  store: Store,
  fence: Fence,
  build: ((batch: Batch) => unknown) | readonly BatchOp[],
  opts: FencedTxnOptions = {},
): Promise<BatchResult> {
  if (fence.revision <= 0n) {
    throw new StoreError('invalid', `fence revision must be positive, got ${fence.revision}`);
  }
  const ops = typeof build === 'function' ? built(build) : build;
  const chunks = chunkOps(ops);
  const results: (readonly boolean[] | undefined)[] = chunks.map(() => undefined);
  let revision = 0n;
  let transactions = 0;
  let refused: FencedError | undefined;
  // With a window, as many transactions go out at once as etcd's latency allows (store/aimd.ts).
  const window = opts.window;
  const paced = <T>(fn: () => Promise<T>): Promise<T> =>
    window === undefined ? fn() : window.run(fn);
  await pool(chunks.length, window?.ceiling ?? opts.inFlight ?? 1, async (i) => {
    const chunk = chunks[i] ?? [];
    if (refused !== undefined) return;
    if (opts.keepUp !== undefined && revision > 0n) await opts.keepUp(revision);
    if (refused !== undefined) return;
    // Sent again across a raft leader change (resend.ts) when etcd strands it; the outcome
    // is then checked below, as the first attempt may have applied.
    let resent = 0;
    const txn = async (req: { compare: ICompare[]; success: IRequestOp[] }) => {
      const res = await paced(() =>
        store.callResending(
          fence.key,
          (c) =>
            c.kv.txn({
              ...req,
              failure: [{ request_range: { key: Buffer.from(fence.key), keys_only: true } }],
            }),
          'txn',
        ),
      );
      resent += res.resent;
      return res.value;
    };
    const stale = (res: ITxnResponse): boolean => {
      const now = big(res.responses[0]?.response_range?.kvs[0]?.create_revision);
      if (now === fence.revision) return false;
      const appliedSoFar = results.flatMap((r) => r ?? []).filter(Boolean).length;
      refused ??= new FencedError(fence, now, appliedSoFar);
      return true;
    };
    // Usually every condition holds (the leader decided from the mirror): first try the
    // chunk with its conditions as plain compares, which etcd applies faster than nested
    // transactions; only when one fails is it written op by op, each under its own.
    const conditional = chunk.filter((op) => op.condition !== undefined);
    let res: ITxnResponse | undefined;
    if (conditional.length > 0) {
      const flat = await txn({
        compare: [
          fenceCompare(fence),
          ...conditional.map((op) => compareFor(op.key, op.condition as OpCondition)),
        ],
        success: chunk.map(requestFor),
      });
      if (flat.succeeded) {
        res = flat;
        results[i] = chunk.map(() => true);
      } else if (stale(flat)) return;
    }
    if (res === undefined) {
      const nested = await txn({
        compare: [fenceCompare(fence)],
        success: chunk.map(guardedRequestFor),
      });
      if (!nested.succeeded) {
        stale(nested);
        return;
      }
      res = nested;
      results[i] = chunk.map((op, j) => appliedFrom(op, nested.responses[j]));
      const missed = results[i]?.some((ok) => !ok) === true;
      if (resent > 0 && missed) {
        const { held } = await heldNow(store, chunk);
        results[i] = chunk.map((_, j) => results[i]?.[j] === true || held[j] === true);
      }
    }
    const rev = big(res.header.revision);
    if (rev > revision) revision = rev;
    transactions += 1;
  });
  if (refused !== undefined) throw refused;
  const applied = results.flatMap((r) => r ?? []);
  return { ops, applied, revision, transactions };
}

function built(build: (batch: Batch) => unknown): readonly BatchOp[] {
  const batch = new Batch();
  build(batch);
  return batch.ops;
}
