/**
 * The unit files this agent needs, fetched on demand: a placement names a unit and the hash
 * the leader placed, and the agent reads `units/<name>` (or, for an instance without its own
 * record, its template's `instance-counts/` record or the template's record) only when it has
 * no parsed file at that hash yet. The agent never
 * mirrors the whole `units/` directory, so a change to a unit that runs elsewhere wakes no
 * agent but the one it is placed on (through its placement's new hash).
 */
import type { Logger } from 'pino';
import { codecs, type Store } from '../../store/index.js';
import { inSpans, instanceNumber } from '../../lib/number-ranges.js';
import { isUnitError, parseUnit, parseUnitName, type UnitDefinition } from '../../unit/index.js';
import type { FileStatus } from './reconcile-tasks.js';

/** Options of {@link UnitFiles}. */
export interface UnitFilesOptions {
  /** After a failed fetch or a hash that does not match yet, wait this long. Default 1000 ms. */
  readonly retryMs?: number;
  /** Called when a fetch finished with news (so the reconciler runs again). */
  readonly onChange: () => void;
}

interface Entry {
  hash: string;
  status: FileStatus;
  inFlight: boolean;
  retryAt: number;
}

/** A per-(name, hash) cache of parsed unit files, filled from etcd in the background. */
export class UnitFiles {
  private readonly entries = new Map<string, Entry>();
  private readonly retryMs: number;
  private closed = false;

  constructor(
    private readonly store: Store,
    private readonly log: Logger,
    private readonly opts: UnitFilesOptions,
  ) {
    this.retryMs = opts.retryMs ?? 1_000;
  }

  /**
   * The status of `name` at `hash` now; starts a fetch when it is not known (the result
   * arrives through `onChange`). Never blocks and never throws.
   */
  status(name: string, hash: string, now: number): FileStatus {
    let entry = this.entries.get(name);
    if (entry === undefined || entry.hash !== hash) {
      entry = { hash, status: { kind: 'pending' }, inFlight: false, retryAt: 0 };
      this.entries.set(name, entry);
    }
    const settled = entry.status.kind === 'ok' || entry.status.kind === 'invalid';
    if (!settled && !entry.inFlight && now >= entry.retryAt) this.fetch(name, entry);
    return entry.status;
  }

  /** Drops cached files of units no longer placed here. */
  retain(names: ReadonlySet<string>): void {
    for (const name of this.entries.keys()) if (!names.has(name)) this.entries.delete(name);
  }

  close(): void {
    this.closed = true;
  }

  private fetch(name: string, entry: Entry): void {
    entry.inFlight = true;
    this.load(name, entry.hash).then(
      (status) => {
        entry.inFlight = false;
        if (status.kind !== 'ok' && status.kind !== 'invalid') {
          entry.retryAt = Date.now() + this.retryMs;
        }
        const changed = status.kind !== entry.status.kind;
        entry.status = status;
        if (changed && !this.closed && this.entries.get(name) === entry) this.opts.onChange();
      },
      (err: unknown) => {
        entry.inFlight = false;
        entry.retryAt = Date.now() + this.retryMs;
        if (!this.closed) this.log.warn({ unit: name, err }, 'cannot read the unit file');
      },
    );
  }

  /**
   * Reads the file for `name` and judges it against the placed `hash`: the instance's own
   * record, else (an instance a scale counted) its template's count record when it holds the
   * number, else the template's record, the first of those two on the placed hash.
   */
  private async load(name: string, hash: string): Promise<FileStatus> {
    const { keys } = this.store;
    let record: { value: { hash: string; file: string } } | undefined = await this.store.getRecord(
      codecs.unit,
      keys.unit(name),
    );
    const template = record === undefined ? templateOf(name) : undefined;
    if (template !== undefined) {
      const count = await this.store.getRecord(
        codecs['instance-count'],
        keys.instanceCount(template),
      );
      const n = instanceNumber(name);
      const counted =
        count !== undefined && n !== undefined && inSpans(count.value.ranges, n)
          ? count
          : undefined;
      const file =
        counted?.value.hash === hash
          ? undefined
          : await this.store.getRecord(codecs.unit, keys.unit(template));
      record = [counted, file].find((r) => r?.value.hash === hash) ?? counted ?? file;
    }
    if (record === undefined) return { kind: 'missing' };
    if (record.value.hash !== hash) {
      // The leader has not caught up with an edit yet (or we have not): wait for the
      // placement to name the hash the record has.
      this.log.debug(
        { unit: name, placed: hash, stored: record.value.hash },
        'unit file hash differs from the placement; waiting',
      );
      return { kind: 'pending' };
    }
    return judge(name, record.value.file);
  }
}

/** Parses `text` as `name`: ok, or invalid with the parser's message. */
export function judge(name: string, text: string): FileStatus {
  let def: UnitDefinition;
  try {
    def = parseUnit(name, text);
  } catch (err) {
    if (!isUnitError(err)) throw err;
    const where = err.line > 0 ? `${name}:${err.line}` : name;
    return { kind: 'invalid', message: `the unit file does not parse: ${where}: ${err.message}` };
  }
  return { kind: 'ok', def };
}

/** `web@3.service` -> `web@.service`; undefined for names that are not instances. */
function templateOf(name: string): string | undefined {
  try {
    const parsed = parseUnitName(name);
    return parsed.isInstance ? parsed.template : undefined;
  } catch {
    return undefined;
  }
}
