/**
 * Per-unit logs: every command of a unit appends its stdout and stderr (one combined stream,
 * in write order) to `<logs>/<unit>.log`. The file is written by the unit's own processes,
 * not piped through the agent, so a unit keeps logging while no agent runs; the price is that
 * the agent caps it by copy-and-truncate (`.log` -> `.log.1`, as logrotate's copytruncate):
 * lines written during the copy itself can be lost, and between two checks a file may grow
 * past the cap. At most two files per unit exist, so a unit never takes more than about
 * 2 x maxBytes of disk.
 */
import { appendFile, chmod, copyFile, rm, stat, truncate } from 'node:fs/promises';
import { join } from 'node:path';
import { isSafeUnitName } from '../runtime/layout.js';
import { RuntimeError } from '../runtime/errors.js';
import { mkdirPrivate, PRIVATE_FILE_MODE } from '../runtime/private-files.js';
import { followLog, type RotationState } from './follow.js';
import { lastLines } from './read.js';

/** Options of {@link LogStore}; defaults in {@link LOG_DEFAULTS}. */
export interface LogStoreOptions {
  /** Directory of the log files (the machine's `logs/` under the state directory). */
  readonly dir: string;
  /** Rotate a unit's log once it is larger than this. Default 10 MiB. */
  readonly maxBytes?: number;
  /** How often {@link LogStore.follow} looks for new lines. Default 200 ms. */
  readonly pollMs?: number;
}

export const LOG_DEFAULTS = { maxBytes: 10 * 1024 * 1024, pollMs: 200 } as const;

/** Options of {@link LogStore.follow}. */
export interface FollowOptions {
  /** Ends the iteration (the iterator then returns; it never throws for an abort). */
  readonly signal?: AbortSignal;
  /** First yield this many of the lines already there (like `tail -n N -f`). Default 0. */
  readonly backlog?: number;
}

/** All units' logs of one machine. */
export class LogStore {
  readonly dir: string;
  readonly maxBytes: number;
  readonly pollMs: number;
  private readonly rotations = new Map<string, RotationState>();
  private readonly notes = new Map<string, Promise<void>>();

  constructor(opts: LogStoreOptions) {
    this.dir = opts.dir;
    this.maxBytes = opts.maxBytes ?? LOG_DEFAULTS.maxBytes;
    this.pollMs = opts.pollMs ?? LOG_DEFAULTS.pollMs;
  }

  /** The current log file of `unit`; the previous one is this plus `.1`. */
  path(unit: string): string {
    if (!isSafeUnitName(unit)) {
      throw new RuntimeError('invalid-name', `unit name ${JSON.stringify(unit)} is not valid`);
    }
    return join(this.dir, `${unit}.log`);
  }

  /**
   * Appends one line from the agent itself (lifecycle events, as systemd journals them),
   * prefixed `flotilla: `. Lines of one unit are appended in call order.
   */
  note(unit: string, text: string): Promise<void> {
    const path = this.path(unit);
    const previous = this.notes.get(unit) ?? Promise.resolve();
    const next = previous
      .then(() => mkdirPrivate(this.dir))
      .then(() => appendFile(path, `flotilla: ${text}\n`, { mode: PRIVATE_FILE_MODE }));
    const settled = next.catch(() => undefined);
    this.notes.set(unit, settled);
    void settled.then(() => {
      if (this.notes.get(unit) === settled) this.notes.delete(unit);
    });
    return next;
  }

  /** The last `n` lines of the unit's output, oldest first, across the rotated file. */
  async tail(unit: string, n: number): Promise<string[]> {
    const path = this.path(unit);
    const recent = await lastLines(path, n);
    if (recent.length >= n) return recent;
    return [...(await lastLines(`${path}.1`, n - recent.length)), ...recent];
  }

  /**
   * New lines of the unit's output as they are written, after `backlog` old ones; survives
   * rotation. Ends when `signal` aborts or the consumer stops iterating.
   *
   * @example
   *   for await (const line of logs.follow('web@1.service', { signal, backlog: 10 })) send(line);
   */
  follow(unit: string, opts: FollowOptions = {}): AsyncGenerator<string, void, undefined> {
    return followLog(this.path(unit), this.rotation(unit), {
      pollMs: this.pollMs,
      backlog: opts.backlog ?? 0,
      ...(opts.signal !== undefined ? { signal: opts.signal } : {}),
    });
  }

  /**
   * Moves the log to `.log.1` (copy, then truncate: the writers keep their descriptors) when
   * it is over the cap. Returns true when it rotated.
   */
  async rotateIfNeeded(unit: string): Promise<boolean> {
    const path = this.path(unit);
    const size = await stat(path).then(
      (s) => s.size,
      () => 0,
    );
    if (size <= this.maxBytes) return false;
    // Followers wait while `rotating`: between the truncate and the new generation they would
    // see a short file, start it over at 0, then read the rest of `.1` from the wrong offset.
    const rotation = this.rotation(unit);
    rotation.rotating = true;
    try {
      await copyFile(path, `${path}.1`);
      await chmod(`${path}.1`, PRIVATE_FILE_MODE);
      await truncate(path, 0);
      rotation.generation += 1;
    } finally {
      rotation.rotating = false;
    }
    return true;
  }

  /** Deletes both files of a unit's log (when the unit is destroyed, not when it stops). */
  async remove(unit: string): Promise<void> {
    const path = this.path(unit);
    await rm(path, { force: true });
    await rm(`${path}.1`, { force: true });
    this.rotations.delete(unit);
  }

  private rotation(unit: string): RotationState {
    let state = this.rotations.get(unit);
    if (state === undefined) {
      state = { generation: 0, rotating: false };
      this.rotations.set(unit, state);
    }
    return state;
  }
}
