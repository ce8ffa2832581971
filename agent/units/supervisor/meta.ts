/**
 * meta.json: what an agent must know to take a unit over after a restart, kept in the unit's
 * state directory beside the shim's files. Written atomically (temp file, rename) before every
 * start, so it always describes the processes that run.
 */
import { readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { ContainerOptions, ServiceOptions } from '../../../unit/model.js';
import { UNIT_FILES } from '../../runtime/layout.js';
import { START_LIMIT_MAX_BURST } from '../../../unit/start-limit.js';

/** The persisted record of one supervised unit. */
export interface UnitMeta {
  readonly version: 1;
  readonly unit: string;
  readonly hash: string;
  readonly service: ServiceOptions;
  /** An image unit's [Container] options: an adopting agent re-runs its image step. */
  readonly container?: ContainerOptions;
  /** Restarts so far (UnitState.restarts survives agent restarts). */
  readonly restarts: number;
  /** Index of the ExecStart= line that runs (oneshot units run several in order). */
  readonly step: number;
  /** Unix ms when the current main process started; 0 before the first start. */
  readonly startedAt: number;
  /**
   * The rest of the restart bookkeeping, so an agent restart gives a crash loop neither a
   * fresh start limit nor a fresh back-off, and keeps saying why it restarts. Absent in
   * files of older agents (then: none). `starts`: when each recent run began (Unix ms,
   * oldest first, at most StartLimitBurst=); `streak`: consecutive short runs (back-off);
   * `restartReason`: as in the state record.
   */
  readonly starts?: readonly number[];
  readonly streak?: number;
  readonly restartReason?: string;
  /**
   * Set once the unit reached a state it stays in (failed, dead, oneshot exited): a new agent
   * reports it as is instead of running the unit's stop hooks a second time.
   */
  readonly final?: FinalState;
}

/** The fields of a settled unit's state that a new agent reports unchanged. */
export interface FinalState {
  readonly activeState: string;
  readonly subState: string;
  readonly exitStatus: number;
  readonly exitSignal: string;
  readonly message: string;
}

/** Writes `meta` into the unit directory `dir` atomically. */
export async function writeMeta(dir: string, meta: UnitMeta): Promise<void> {
  const path = join(dir, UNIT_FILES.meta);
  // 0600: the unit's environment is in it (see agent/runtime/private-files.ts).
  await writeFile(`${path}.tmp`, `${JSON.stringify(meta)}\n`, { mode: 0o600 });
  await rename(`${path}.tmp`, path);
}

function isMeta(value: unknown): value is UnitMeta {
  if (typeof value !== 'object' || value === null) return false;
  const v = value as Record<string, unknown>;
  const service = v['service'] as Record<string, unknown> | null | undefined;
  return (
    v['version'] === 1 &&
    typeof v['unit'] === 'string' &&
    typeof v['hash'] === 'string' &&
    typeof v['restarts'] === 'number' &&
    typeof v['step'] === 'number' &&
    typeof v['startedAt'] === 'number' &&
    typeof service === 'object' &&
    service !== null &&
    Array.isArray(service['execStart'])
  );
}

/** The longest restart reason kept (the state record's messages are bounded as well). */
const MAX_REASON_CHARS = 4096;

/**
 * `meta` with its optional bookkeeping dropped where it is not what this agent writes: a bad
 * field costs the count it holds, never the adoption of the unit.
 */
function withValidBookkeeping(meta: UnitMeta): UnitMeta {
  const { starts, streak, restartReason, ...rest } = meta;
  const valid = {
    ...rest,
    ...(Array.isArray(starts) &&
    starts.length <= START_LIMIT_MAX_BURST &&
    starts.every((at) => Number.isFinite(at))
      ? { starts }
      : {}),
    ...(Number.isSafeInteger(streak) && (streak ?? -1) >= 0 ? { streak } : {}),
    ...(typeof restartReason === 'string'
      ? { restartReason: restartReason.slice(0, MAX_REASON_CHARS) }
      : {}),
  };
  return valid;
}

/** The meta of the unit directory `dir`, or undefined when it is missing or unreadable. */
export async function readMeta(dir: string): Promise<UnitMeta | undefined> {
  try {
    const parsed: unknown = JSON.parse(await readFile(join(dir, UNIT_FILES.meta), 'utf8'));
    return isMeta(parsed) ? withValidBookkeeping(parsed) : undefined;
  } catch {
    return undefined;
  }
}
