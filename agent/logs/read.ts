/**
 * Reading a unit's log files while its processes write them: the last lines before an
 * offset, a byte range, a size. What both the store (tail) and its followers read with. A
 * missing file reads as empty (a unit that has not written yet, a log not yet rotated).
 */
import { constants } from 'node:fs';
import { open, stat } from 'node:fs/promises';

const CHUNK = 64 * 1024;

/**
 * The last `n` lines of `path` before byte `end` (a final line without newline counts).
 * Reads backwards in chunks, so a 10 MiB log costs what the lines asked for, not the file.
 */
export async function lastLines(path: string, n: number, end?: number): Promise<string[]> {
  if (n <= 0) return [];
  let handle;
  try {
    handle = await open(path, constants.O_RDONLY);
  } catch {
    return [];
  }
  try {
    let pos = end ?? (await handle.stat()).size;
    let text = '';
    let newlines = 0;
    while (pos > 0 && newlines <= n) {
      const size = Math.min(CHUNK, pos);
      pos -= size;
      const buf = Buffer.alloc(size);
      await handle.read(buf, 0, size, pos);
      const chunk = buf.toString('utf8');
      for (const ch of chunk) if (ch === '\n') newlines += 1;
      text = chunk + text;
    }
    const lines = text.split('\n');
    if (lines.at(-1) === '') lines.pop();
    // Without reaching the start, the first piece may be a partial line: drop it.
    if (pos > 0) lines.shift();
    return lines.slice(-n);
  } finally {
    await handle.close();
  }
}

/** The size of `path`; 0 when it is missing. */
export async function sizeOf(path: string): Promise<number> {
  return stat(path).then(
    (s) => s.size,
    () => 0,
  );
}

/** Bytes [from, to) of `path` (fewer when the file is shorter). */
export async function readRange(path: string, from: number, to: number): Promise<Buffer> {
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
