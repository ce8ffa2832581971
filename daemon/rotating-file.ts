/**
 * An append-only file of lines that rotates by size: when a line would take it past
 * `maxBytes`, `FILE` becomes `FILE.1` (`FILE.1` becomes `FILE.2`, ...; the oldest beyond
 * `keep` is deleted) and a new `FILE` starts. Lines are written whole and in order, one
 * synchronous write each, so a crash loses at most the line being written and lines of
 * concurrent callers never interleave. Meant for low rates (one line per API write).
 *
 * @example
 *   const audit = RotatingFile.open('/var/log/flotilla/audit.log', { maxBytes: 64 << 20 });
 *   audit.writeLine(JSON.stringify({ method: 'Units.DestroyUnits' }));
 */
import { closeSync, fstatSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';

/** Options of {@link RotatingFile.open}. */
export interface RotatingFileOptions {
  /** Rotate before the file grows past this. Default 64 MiB. */
  readonly maxBytes?: number;
  /** Rotated files kept beside the current one. Default 5. */
  readonly keep?: number;
}

export class RotatingFile {
  private fd: number;
  private size: number;

  private constructor(
    readonly path: string,
    private readonly maxBytes: number,
    private readonly keep: number,
  ) {
    this.fd = openSync(path, 'a', 0o600);
    this.size = fstatSync(this.fd).size;
  }

  /** Opens (creating, mode 0600) `path` for appending; throws when it cannot. */
  static open(path: string, opts: RotatingFileOptions = {}): RotatingFile {
    return new RotatingFile(path, opts.maxBytes ?? 64 * 1024 * 1024, opts.keep ?? 5);
  }

  /** Appends `line` and a newline, rotating first when it would not fit. */
  writeLine(line: string): void {
    const bytes = Buffer.from(`${line}\n`);
    if (this.size > 0 && this.size + bytes.length > this.maxBytes) this.rotate();
    writeSync(this.fd, bytes);
    this.size += bytes.length;
  }

  close(): void {
    closeSync(this.fd);
  }

  private rotate(): void {
    closeSync(this.fd);
    rmSync(`${this.path}.${this.keep}`, { force: true });
    for (let i = this.keep - 1; i >= 1; i--) {
      try {
        renameSync(`${this.path}.${i}`, `${this.path}.${i + 1}`);
      } catch {
        // not there yet
      }
    }
    if (this.keep > 0) renameSync(this.path, `${this.path}.1`);
    else rmSync(this.path, { force: true });
    this.fd = openSync(this.path, 'a', 0o600);
    this.size = 0;
  }
}
