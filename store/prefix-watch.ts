/**
 * A raw watch of one key prefix from a revision, with the values a change replaced, paused
 * and resumed by its consumer: what the API's Events stream needs when a client asks for
 * changes older than its replica's mirror holds. Changes arrive as plain records of keys and
 * bytes; the consumer decodes what it needs. (The mirror and the agents use WatchCache.)
 */
import type { Store } from './client.js';
import { StoreError, toStoreError } from './errors.js';
import type { WatchEvent, WatchResponse } from './watch-codec.js';

/** One change under the prefix. */
export interface PrefixChange {
  readonly type: 'put' | 'delete';
  readonly key: string;
  /** The new value of a put; the value a delete removed (absent when etcd no longer has it). */
  readonly value: Buffer | undefined;
  readonly revision: bigint;
}

/** What a prefix watch tells its consumer. */
export interface PrefixWatchHandlers {
  /** etcd has set the watch up: any write from now on will be reported. */
  created(): void;
  /** The changes of one response, in order. Return false to pause until `resume()`. */
  changes(changes: readonly PrefixChange[]): boolean;
  /**
   * The watch ended: `compacted` when the start revision is no longer in etcd's history (the
   * oldest one it still has is `compactRevision`), else a StoreError (`unavailable`).
   */
  ended(err: StoreError, compactRevision?: bigint): void;
}

/** A running prefix watch. */
export interface PrefixWatch {
  pause(): void;
  resume(): void;
  /** Ends the watch; no handler is called after it. */
  cancel(): void;
}

/** Watches every key under `prefix` from revision `from` (0: from now). */
export async function watchPrefix(
  store: Store,
  prefix: string,
  from: bigint,
  handlers: PrefixWatchHandlers,
): Promise<PrefixWatch> {
  const stream = await store.call(prefix, (c) => c.watchStream(), 'watch');
  let done = false;
  const end = (err: StoreError, compactRevision?: bigint): void => {
    if (done) return;
    done = true;
    stream.cancel();
    handlers.ended(err, compactRevision);
  };
  stream.on('data', (res: WatchResponse) => {
    if (done) return;
    const compacted = res.compactRevision;
    if (compacted > 0n) {
      return end(new StoreError('compacted', `revision ${from} has been compacted`), compacted);
    }
    if (res.canceled) {
      return end(new StoreError('unavailable', `etcd canceled the watch: ${res.cancelReason}`));
    }
    if (res.created) handlers.created();
    if (res.events.length === 0) return;
    if (!handlers.changes(res.events.map(toChange))) stream.pause();
  });
  stream.on('error', (err) => end(toStoreError(err, prefix)));
  stream.on('end', () => end(new StoreError('unavailable', 'the etcd watch stream ended')));
  stream.write({ create: { prefix, startRevision: from, prevKv: true } });
  return {
    pause: () => stream.pause(),
    resume: () => stream.resume(),
    cancel: () => {
      done = true;
      stream.cancel();
    },
  };
}

function toChange(ev: WatchEvent): PrefixChange {
  return {
    type: ev.type,
    key: ev.kv.key,
    value: ev.type === 'delete' ? ev.prev?.value : ev.kv.value,
    revision: ev.kv.modRevision,
  };
}
