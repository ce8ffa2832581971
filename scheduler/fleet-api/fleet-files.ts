/**
 * fleet's view of each stored unit file (its options, their hash and their JSON), computed once
 * per file content and shared by every unit with that content: a template's 100,000 instances
 * cost one read of the file, and a listing of them costs a map lookup and a string compare per
 * unit. The cache is bounded by the bytes it holds and forgets the least recently used file.
 */
import type { Unit } from '../../proto/flotilla/v1/records.js';
import { fleetHash, readOptions, type UnitOption } from './unit-options.js';

/** fleet's view of one unit file. */
export interface FleetFile {
  /** The stored text this was computed from (the mirror's string: no copy). */
  readonly file: string;
  readonly options: readonly UnitOption[];
  /** SHA1 of fleet's serialization of `options`, 40 hex digits. */
  readonly hash: string;
  /** `options` as JSON, ready to splice into a response. */
  readonly optionsJson: string;
}

/** Options of {@link FleetFiles}. */
export interface FleetFilesOptions {
  /** Bytes of option JSON kept before the least recently used files are forgotten. Default 64 MiB. */
  readonly maxBytes?: number;
}

/** The cache of {@link FleetFile}s by content. */
export class FleetFiles {
  private readonly byKey = new Map<string, FleetFile>();
  private bytes = 0;
  private readonly maxBytes: number;

  constructor(opts: FleetFilesOptions = {}) {
    this.maxBytes = opts.maxBytes ?? 64 * 1024 * 1024;
  }

  /** fleet's view of `unit`'s file. O(1) for a file seen before, O(file) otherwise. */
  of(unit: Pick<Unit, 'file' | 'hash'>): FleetFile {
    // The content hash names the file; a second text with the same hash (it differs only in
    // comments, which fleet does not see either way) simply replaces the first.
    const key = unit.hash === '' ? unit.file : unit.hash;
    const hit = this.byKey.get(key);
    if (hit !== undefined && hit.file === unit.file) {
      this.byKey.delete(key);
      this.byKey.set(key, hit);
      return hit;
    }
    const { options } = readOptions(unit.file);
    const entry: FleetFile = {
      file: unit.file,
      options,
      hash: fleetHash(options),
      optionsJson: JSON.stringify(options),
    };
    if (hit !== undefined) this.forget(key, hit);
    this.byKey.set(key, entry);
    this.bytes += entry.optionsJson.length;
    for (const [k, old] of this.byKey) {
      if (this.bytes <= this.maxBytes || old === entry) break;
      this.forget(k, old);
    }
    return entry;
  }

  /** How many files are cached (for tests and metrics). */
  get size(): number {
    return this.byKey.size;
  }

  private forget(key: string, entry: FleetFile): void {
    this.byKey.delete(key);
    this.bytes -= entry.optionsJson.length;
  }
}
