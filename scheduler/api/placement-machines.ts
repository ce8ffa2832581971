/**
 * Which machines have placements: the one small cache the API keeps.
 *
 * A unit's placement lives under placements/<machine>/<name>, so finding it means knowing
 * which machine directories exist. Live and configured machines are known from machines/ and
 * machine-metadata/, but a machine that was lost keeps its placements until the leader moves
 * them (and the leader pauses rescheduling when many machines vanish at once): exactly when an
 * operator most needs `status` to say where units are. This index follows placements/ (keys
 * only, values are not kept) and counts placements per machine, so readers can add every
 * machine that holds any. It only nominates machines: the placements themselves are always
 * read from etcd at the request's revision, so a stale index can cost a read, never a wrong
 * answer, except for a machine that registered, got placements and vanished before the index
 * saw any of it.
 */
import type { Logger } from 'pino';
import { WatchCache, type CacheChange, type RecordCodec, type Store } from '../../store/index.js';

/** Values are not needed, only keys: decode everything to null. */
const keysOnly: RecordCodec<null> = {
  type: 'placement key',
  encode: () => '',
  decode: () => null,
};

/** Machine ids that hold at least one placement, kept current by a watch. */
export class PlacementMachines {
  private readonly cache: WatchCache<null>;
  private readonly counts = new Map<string, number>();

  constructor(
    private readonly store: Store,
    logger: Logger,
  ) {
    this.cache = new WatchCache(store, { prefix: store.keys.dir('placement'), codec: keysOnly });
    this.cache.onError((err) => logger.debug({ err }, 'placement index: retrying'));
    this.cache.on((event) => {
      if (event.type === 'resync') event.changes.forEach((c) => this.apply(c));
      else this.apply(event);
    });
  }

  /** Machines holding placements as far as the index has seen (empty until its first listing). */
  ids(): string[] {
    return [...this.counts.keys()];
  }

  /** Resolves once the first listing is in (tests; handlers never wait for it). */
  ready(): Promise<void> {
    return this.cache.ready();
  }

  close(): Promise<void> {
    return this.cache.close();
  }

  private apply(change: CacheChange<null>): void {
    const machine = this.store.keys.parse(change.key)?.machine;
    if (machine === undefined) return;
    if (change.type === 'put') {
      if (change.prev !== undefined) return; // an overwrite: the count stands
      this.counts.set(machine, (this.counts.get(machine) ?? 0) + 1);
      return;
    }
    const left = (this.counts.get(machine) ?? 0) - 1;
    if (left > 0) this.counts.set(machine, left);
    else this.counts.delete(machine);
  }
}
