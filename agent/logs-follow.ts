/**
 * Following a log file across copy-truncate rotations. The follower remembers its byte offset
 * and the rotation generation it read at; when the store rotated meanwhile, the bytes it had
 * not read yet are at the same offsets in `.log.1` (a copy of the old file), so it finishes
 * those first and starts the fresh file at 0: no line is skipped or repeated by a rotation.
 */
import { constants } from 'node:fs';
import { open, stat } from 'node:fs/promises';
import { StringDecoder } from 'node:string_decoder';
import { lastLines, type RotationState } from './logs.js';

/** Options of {@link followLog}. */
export interface FollowLogOptions {
  readonly pollMs: number;
  readonly backlog: number;
  readonly signal?: AbortSignal;
}

/** Reading more than this per poll would let one chatty unit stall a follower's memory. */
const MAX_READ = 1024 * 1024;

async function sizeOf(path: string): Promise<number> {
  return stat(path).then(
    (s) => s.size,
    () => 0,
  );
}

/** Bytes [from, to) of `path` (fewer when the file is shorter). */
async function readRange(path: string, from: number, to: number): Promise<Buffer> {
  if (to <= from) return Buffer.alloc(0);
  let handle;
  try {
    handle = await open(path, constants.O_RDONLY);
  } catch {
    return Buffer.alloc(0);
  }
  try {
    const buf = Buffer.alloc(to - from);
    const { bytesRead } = await handle.read(buf, 0, buf.length, from);
    return buf.subarray(0, bytesRead);
  } finally {
    await handle.close();
  }
}

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
    let bytes: Buffer = Buffer.alloc(0);
    if (rotation.generation !== generation) {
      // Rotated: the rest of what we were reading is now the tail of `.1`.
      bytes = await readRange(`${path}.1`, offset, await sizeOf(`${path}.1`));
      generation = rotation.generation;
      offset = 0;
    }
    const size = await sizeOf(path);
    if (size < offset) offset = 0; // truncated by someone else: start over
    const fresh = await readRange(path, offset, Math.min(size, offset + MAX_READ));
    offset += fresh.length;
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
