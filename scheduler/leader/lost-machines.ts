/**
 * Lost machines, remembered for a while (Nomad shows such nodes as `down`): when a machine's
 * presence key vanishes, the leader writes `lost-machines/<id>` with the machine's last
 * record, when it went and the units placed on it then, fenced like its other writes, so
 * every replica's API can list the machine as lost and say what moved. A record is deleted
 * when the machine registers again, after {@link LOST_RETENTION_MS}, or when more than
 * {@link MAX_LOST_MACHINES} are kept (the oldest first).
 *
 * Bounded: every replica notes losses as its mirror sees them (so a replica elected a moment
 * later still writes them), at most {@link MAX_LOST_MACHINES} at a time; a record holds at
 * most {@link LOST_UNIT_NAMES} unit names and {@link LOST_METADATA_KEYS} metadata keys, and
 * at most {@link MAX_LOST_BYTES} in all. A mass loss of 5,000 machines therefore writes at
 * most 1,000 small records, 128 to a transaction. A step with nothing to do costs O(1).
 */
import type { Logger } from 'pino';
import type { LostMachine, Machine } from '../../proto/flotilla/v1/records.js';
import {
  codecs,
  fencedTxn,
  type ClusterMirror,
  type Store,
  type Unsubscribe,
} from '../../store/index.js';
import type { Term } from './leadership.js';

/** How long a lost machine is remembered: one hour. */
export const LOST_RETENTION_MS = 3_600_000;
/** The most lost machines remembered at once. */
export const MAX_LOST_MACHINES = 1_000;
/** Unit names a record keeps (the first by name); the count is always kept. */
export const LOST_UNIT_NAMES = 10;
/** Metadata keys a record keeps of the machine's last record. */
export const LOST_METADATA_KEYS = 32;
/** A record larger than this is written without the machine's metadata. */
export const MAX_LOST_BYTES = 4_096;

/** Options of {@link LostMachines}; defaults are the constants above. */
export interface LostMachinesOptions {
  readonly retentionMs?: number;
  readonly max?: number;
  readonly now?: () => number;
}

/** The leader's keeper of `lost-machines/`; every replica follows the mirror with one. */
export class LostMachines {
  private readonly retentionMs: number;
  private readonly max: number;
  private readonly now: () => number;
  /** Losses seen and not yet recorded, in the order seen (at most `max`). */
  private readonly pending = new Map<string, LostMachine>();
  /** Recorded machines seen registering again: their records go. */
  private readonly returned = new Set<string>();
  /** When the records are next looked over for age and count. */
  private nextSweep = 0;

  constructor(
    private readonly store: Store,
    private readonly mirror: ClusterMirror,
    opts: LostMachinesOptions,
    private readonly logger: Logger,
  ) {
    this.retentionMs = opts.retentionMs ?? LOST_RETENTION_MS;
    this.max = opts.max ?? MAX_LOST_MACHINES;
    this.now = opts.now ?? Date.now;
  }

  /** Notes machines vanishing and returning as the mirror sees them, leader or not. */
  follow(): Unsubscribe {
    return this.mirror.on((e) => {
      for (const c of e.changes) {
        const id = c.parsed?.name;
        if (id === undefined) continue;
        if (c.kind === 'lost-machine' && c.change.type === 'put') this.pending.delete(id);
        if (c.kind !== 'machine') continue;
        const { change } = c;
        if (change.type === 'put') {
          this.pending.delete(id);
          if (this.mirror.lostMachines.has(id)) this.returned.add(id);
        } else if (change.prev.kind === 'machine') {
          this.noteLost(id, change.prev.value, this.now());
        }
      }
    });
  }

  /**
   * At the start of a term: machines that still hold placements but are gone and not yet
   * recorded were lost meanwhile (or before this replica listed); records of machines that
   * are back go; the records are looked over at the first step.
   */
  termBegins(): void {
    const now = this.now();
    for (const id of this.mirror.placementsOn.keys()) {
      if (!this.mirror.machines.has(id) && !this.mirror.lostMachines.has(id)) {
        this.noteLost(id, { ...EMPTY_MACHINE, id }, now);
      }
    }
    for (const id of this.mirror.lostMachines.keys()) {
      if (this.mirror.machines.has(id)) this.returned.add(id);
    }
    this.nextSweep = 0;
  }

  /** Writes what changed since the last step, fenced by `term`. Throws what fencedTxn throws. */
  async step(term: Term): Promise<void> {
    const now = this.now();
    const sweep = now >= this.nextSweep;
    if (this.pending.size === 0 && this.returned.size === 0 && !sweep) return;
    const { mirror } = this;
    const puts = [...this.pending.values()].filter((lost) => {
      const id = lost.machine?.id ?? '';
      const recorded = mirror.lostMachines.get(id)?.value;
      return (
        !mirror.machines.has(id) &&
        Number(lost.lostUnixMs) > now - this.retentionMs &&
        (recorded === undefined || recorded.lostUnixMs < lost.lostUnixMs)
      );
    });
    const deletes = new Map<string, bigint>();
    for (const id of this.returned) {
      const entry = mirror.lostMachines.get(id);
      if (entry !== undefined && mirror.machines.has(id)) deletes.set(id, entry.modRevision);
    }
    const adding = puts.filter((l) => !mirror.lostMachines.has(l.machine?.id ?? '')).length;
    if (sweep) this.sweepDeletes(now, adding, deletes);
    const taken = { pending: [...this.pending], returned: [...this.returned] };
    if (puts.length > 0 || deletes.size > 0) {
      const res = await fencedTxn(this.store, term.fence, (b) => {
        for (const lost of puts) {
          const key = this.store.keys.lostMachine(lost.machine?.id ?? '');
          if (!deletes.has(lost.machine?.id ?? '')) b.putRecord(codecs['lost-machine'], key, lost);
        }
        for (const [id, rev] of deletes)
          b.deleteIfModRevision(this.store.keys.lostMachine(id), rev);
      });
      if (puts.length > 0) {
        this.logger.info(
          { machines: puts.slice(0, 10).map((l) => l.machine?.id), count: puts.length },
          'recorded lost machines',
        );
      }
      await this.mirror.waitFor(res.revision, 10_000).catch(() => undefined);
    }
    // What was noted again while writing stays for the next step.
    for (const [id, lost] of taken.pending)
      if (this.pending.get(id) === lost) this.pending.delete(id);
    for (const id of taken.returned) this.returned.delete(id);
  }

  /** Records past their retention, and the oldest beyond the cap, to delete; sets the next sweep. */
  private sweepDeletes(now: number, adding: number, deletes: Map<string, bigint>): void {
    const kept: { id: string; at: number; rev: bigint }[] = [];
    for (const [id, entry] of this.mirror.lostMachines.entries()) {
      const at = Number(entry.value.lostUnixMs);
      if (at <= now - this.retentionMs) deletes.set(id, entry.modRevision);
      else if (!deletes.has(id)) kept.push({ id, at, rev: entry.modRevision });
    }
    const over = kept.length + adding - this.max;
    if (over > 0) {
      kept.sort((a, b) => a.at - b.at);
      for (const k of kept.splice(0, over)) deletes.set(k.id, k.rev);
    }
    const oldest = kept.reduce((min, k) => Math.min(min, k.at), now);
    this.nextSweep = Math.max(now + 1_000, oldest + this.retentionMs);
  }

  private noteLost(id: string, machine: Machine, now: number): void {
    const placed = [...(this.mirror.placementsOn.get(id)?.keys() ?? [])];
    this.pending.delete(id);
    this.pending.set(id, lostRecord(id, machine, placed, now));
    if (this.pending.size > this.max) {
      const [oldest] = this.pending.keys();
      if (oldest !== undefined) this.pending.delete(oldest);
    }
    this.nextSweep = 0; // room for it may have to be made
  }
}

const EMPTY_MACHINE: Machine = {
  id: '',
  addresses: [],
  metadata: {},
  driver: '',
  version: '',
  agentEndpoint: '',
  portRangeFirst: 0,
  portRangeLast: 0,
  dnsEndpoint: '',
  startedAt: 0n,
  meshProblems: [],
};

/** The bounded record of a machine lost at `now` with `placed` (names in order) on it. */
export function lostRecord(
  id: string,
  machine: Machine,
  placed: readonly string[],
  now: number,
): LostMachine {
  const metadata = Object.fromEntries(
    Object.entries(machine.metadata).slice(0, LOST_METADATA_KEYS),
  );
  const record: LostMachine = {
    machine: { ...machine, id, addresses: machine.addresses.slice(0, 4), metadata },
    lostUnixMs: BigInt(now),
    units: placed.length,
    unitNames: placed.slice(0, LOST_UNIT_NAMES),
  };
  if (codecs['lost-machine'].encode(record).length <= MAX_LOST_BYTES) return record;
  return {
    ...record,
    machine: { ...EMPTY_MACHINE, id, addresses: record.machine?.addresses ?? [] },
  };
}
