/**
 * fleet's paging: a listing answers `{"<items>":[…],"nextPageToken":"…"}` and fleetctl asks
 * again with `?nextPageToken=` while the token is not empty. The token is opaque to clients:
 * here it is base64url of `{v, k, a, m}` (version, the listing it belongs to, the last name
 * and, for states, the last machine returned), so a page starts where the last ended in the
 * mirror's name order and a listing never repeats or skips an entry that exists throughout
 * it. fleet serves 100 entries a page; pages here hold up to {@link PAGE_ENTRIES} entries and
 * {@link PAGE_BYTES} of JSON, so 100,000 units take 10 round trips, not 1,000.
 */
import { ApiError } from '../gate/errors.js';

/** The most entries a page holds. */
export const PAGE_ENTRIES = 10_000;
/** The most bytes of entry JSON a page holds (one entry more may pass it). */
export const PAGE_BYTES = 8 * 1024 * 1024;
/** A token longer than this is not one this API handed out (names are at most 256 chars). */
const TOKEN_MAX_CHARS = 2048;

/** Which listing a token continues. */
export type Listing = 'units' | 'state' | 'machines';

/** Where the next page starts: after `after` (and, in `state`, after machine `machine`). */
export interface PageToken {
  readonly listing: Listing;
  readonly after: string;
  readonly machine?: string;
}

export function encodeToken(t: PageToken): string {
  const json = JSON.stringify({ v: 1, k: t.listing, a: t.after, m: t.machine ?? '' });
  return Buffer.from(json, 'utf8').toString('base64url');
}

/**
 * The token of `?nextPageToken=`, or undefined for the first page. INVALID_ARGUMENT (400, as
 * fleet answers a bad token) when it is not one this API handed out for this listing.
 */
export function pageToken(query: URLSearchParams, listing: Listing): PageToken | undefined {
  const raw = query.get('nextPageToken');
  if (raw === null || raw === '') return undefined;
  const bad = new ApiError(
    'invalid-argument',
    `nextPageToken is not one this API handed out for /fleet/v1/${listing}: list again without it`,
  );
  if (raw.length > TOKEN_MAX_CHARS) throw bad;
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(raw, 'base64url').toString('utf8'));
  } catch {
    throw bad;
  }
  if (typeof parsed !== 'object' || parsed === null) throw bad;
  const { v, k, a, m } = parsed as Record<string, unknown>;
  if (v !== 1 || k !== listing || typeof a !== 'string' || typeof m !== 'string') throw bad;
  return { listing, after: a, ...(m === '' ? {} : { machine: m }) };
}

/** Collects one page of entry JSON, bounded by {@link PAGE_ENTRIES} and {@link PAGE_BYTES}. */
export class Page {
  private readonly entries: string[] = [];
  private bytes = 0;

  /** `maxEntries`: {@link PAGE_ENTRIES} unless a test asks for small pages. */
  constructor(private readonly maxEntries = PAGE_ENTRIES) {}

  /** Whether the page has no room left: the next entry belongs to the next page. */
  get full(): boolean {
    return this.entries.length >= this.maxEntries || this.bytes >= PAGE_BYTES;
  }

  add(json: string): void {
    this.entries.push(json);
    this.bytes += json.length;
  }

  /** `{"<field>":[…],"nextPageToken":"…"}`; the token only when `next` is given. */
  body(field: string, next: PageToken | undefined): string {
    const token = next === undefined ? '' : `,"nextPageToken":"${encodeToken(next)}"`;
    return `{"${field}":[${this.entries.join(',')}]${token}}`;
  }
}
