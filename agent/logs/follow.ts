/**
 * Following a log file across copy-truncate rotations. The follower remembers its byte offset
 * and the rotation generation it read at; when the store rotated meanwhile, the bytes it had
 * not read yet are at the same offsets in `.log.1` (a copy of the old file), so it finishes
 * those first and starts the fresh file at 0: no line is skipped or repeated by a rotation.
 */
import { StringDecoder } from 'node:string_decoder';
import { lastLines, readRange, sizeOf } from './read.js';

/** Where a unit's log rotation stands, shared with followers. */
export interface RotationState {
  /** Increments on every rotation, once the file has been copied and truncated. */
  generation: number;
  /** True from the copy to the new generation: the file's size means nothing meanwhile. */
  rotating: boolean;
}

/** Options of {@link followLog}. */
export interface FollowLogOptions {
  readonly pollMs: number;
  readonly backlog: number;
  readonly signal?: AbortSignal;
}

/** Reading more than this per poll would let one chatty unit stall a follower's memory. */
const MAX_READ = 1024 * 1024;

function pause(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener('abort', done, { once: true });
  });
}

/** See {@link LogStore.follow}. */
export async function* followLog(
  path: string,
  rotation: RotationState,
  opts: FollowLogOptions,
): AsyncGenerator<string, void, undefined> {
  let generation = rotation.generation;
  let offset = await sizeOf(path);
  let pending = '';
  const decoder = new StringDecoder('utf8');
  const aborted = (): boolean => opts.signal?.aborted === true;
  if (opts.backlog > 0) {
    let backlog = await lastLines(path, opts.backlog, offset);
    if (backlog.length < opts.backlog) {
      backlog = [...(await lastLines(`${path}.1`, opts.backlog - backlog.length)), ...backlog];
    }
    for (const line of backlog) yield line;
  }
  while (!aborted()) {
    if (rotation.rotating) {
      await pause(opts.pollMs, opts.signal);
      continue;
    }
    const seen = rotation.generation;
    let from = offset;
    let bytes: Buffer = Buffer.alloc(0);
    if (seen !== generation) {
      // Rotated: the rest of what we were reading is now the tail of `.1`.
      bytes = await readRange(`${path}.1`, offset, await sizeOf(`${path}.1`));
      from = 0;
    }
    const size = await sizeOf(path);
    if (size < from) from = 0; // truncated by someone else: start over
    const fresh = await readRange(path, from, Math.min(size, from + MAX_READ));
    // A rotation that began while we read makes what we read ambiguous: read again after it.
    if (rotation.rotating || rotation.generation !== seen) continue;
    generation = seen;
    offset = from + fresh.length;
    bytes = Buffer.concat([bytes, fresh]);
    if (bytes.length > 0) {
      const lines = (pending + decoder.write(bytes)).split('\n');
      pending = lines.pop() ?? '';
      for (const line of lines) yield line;
      if (aborted()) return;
      if (fresh.length === MAX_READ) continue;
    }
    await pause(opts.pollMs, opts.signal);
  }
}
