/**
 * The console's static files (`npm run build` bundles console/ into dist/ui/), served at
 * /ui/. A path names a file of that folder or, when it names none and is no asset's kind of
 * file, a client route of the console, answered with index.html so a reload or a shared link works.
 * No path leaves the folder ("..", backslashes, NUL and absolute segments are refused). The
 * bundles carry a content hash in their names and are cached for a year; index.html is
 * revalidated every time, so a new build is seen at the next load. Bundles are read once and
 * kept (the whole console is well under a megabyte; each file at most {@link ASSET_MAX_BYTES}).
 */
import { readFile, stat } from 'node:fs/promises';
import { extname, join, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Where the build puts the console, beside this module's compiled copy (dist/ui/). */
export const CONSOLE_DIR = fileURLToPath(new URL('../../ui/', import.meta.url));

/** The largest file served (the bundle is about 50 KB; its source map about 300 KB). */
export const ASSET_MAX_BYTES = 8 * 1024 * 1024;

const TYPES: Readonly<Record<string, string>> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.txt': 'text/plain; charset=utf-8',
};

/**
 * Headers every console answer carries: scripts and styles only from this origin (nothing
 * from a CDN), no framing (clickjacking), no MIME sniffing.
 */
export const CONSOLE_HEADERS: Readonly<Record<string, string>> = {
  'content-security-policy':
    "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'; base-uri 'self'; form-action 'self'",
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'same-origin',
};

/** One answer: status, headers and body. */
export interface Asset {
  readonly status: number;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: Buffer;
}

/** A name esbuild gave a bundle: `main-6YC7PXEH.js`. */
const HASHED = /-[A-Z0-9]{8}\.(js|css|map)$/;

function plain(status: number, text: string): Asset {
  return {
    status,
    headers: {
      ...CONSOLE_HEADERS,
      'content-type': 'text/plain; charset=utf-8',
      'cache-control': 'no-store',
    },
    body: Buffer.from(`${text}\n`),
  };
}

/** Serves the console's files from one folder; see the module comment. */
export class ConsoleAssets {
  private readonly cache = new Map<string, Promise<Buffer | undefined>>();
  private readonly root: string;

  constructor(dir: string = CONSOLE_DIR) {
    this.root = resolve(dir);
  }

  /**
   * The answer for `path`, the part of the URL after `/ui/` (percent-decoded). Never throws
   * for a bad path: it is a 400 or a 404.
   */
  async get(path: string): Promise<Asset> {
    if (path.length > 1024 || /[\\\0]/.test(path)) return plain(400, 'bad console path');
    const parts = path.split('/').filter((p) => p !== '');
    if (parts.some((p) => p === '..' || p === '.')) return plain(400, 'bad console path');
    const rel = parts.join('/');
    let file = rel === '' ? 'index.html' : rel;
    let body = await this.read(this.root, file);
    // A path that names no file is a client route (`units/web@1.service`), unless it asks
    // for a kind of file the console has: a missing bundle must be a 404, not a page.
    if (body === undefined && TYPES[extname(file)] === undefined) {
      file = 'index.html';
      body = await this.read(this.root, file);
    }
    if (body === undefined) {
      if (file === 'index.html') {
        return plain(404, 'the console is not built here: run `npm run build` and restart');
      }
      return plain(404, `no console file ${rel.slice(0, 200)}`);
    }
    return {
      status: 200,
      headers: {
        ...CONSOLE_HEADERS,
        'content-type': TYPES[extname(file)] ?? 'application/octet-stream',
        'cache-control': HASHED.test(file) ? 'public, max-age=31536000, immutable' : 'no-cache',
      },
      body,
    };
  }

  private read(root: string, file: string): Promise<Buffer | undefined> {
    const full = join(root, file);
    if (!full.startsWith(root + sep)) return Promise.resolve(undefined);
    let p = this.cache.get(full);
    if (p === undefined) {
      p = (async () => {
        try {
          const st = await stat(full);
          if (!st.isFile() || st.size > ASSET_MAX_BYTES) return undefined;
          return await readFile(full);
        } catch {
          return undefined;
        }
      })();
      // Only the content-hashed bundles are kept (a name never changes content; a handful
      // per build, at most 64 kept): index.html is read each time, so a rebuild shows at once.
      if (HASHED.test(full) && this.cache.size < 64) {
        this.cache.set(full, p);
        void p.then((b) => b === undefined && this.cache.delete(full));
      }
    }
    return p;
  }
}
