/**
 * Browser sessions of the HTTP listener: a login exchanges a bearer token (checked by the
 * API's policy) for a random session id in a cookie that is HttpOnly (no script reads it),
 * SameSite=Strict (no other site's page sends it) and Secure under TLS, plus a CSRF token
 * the page sends back in `X-CSRF-Token` with every write. The session holds the caller the
 * token identified, never the token; the policy is read once at start, so the roles cannot
 * go stale within a session.
 *
 * Sessions live in this replica's memory, bounded in number and age: a scheduler restart, or
 * a page that moves to another replica, logs in again.
 */
import { randomBytes, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { Caller } from '../gate/auth.js';

/** The cookie's name. */
export const SESSION_COOKIE = 'flotilla_session';
/** The header a session's writes carry their CSRF token in. */
export const CSRF_HEADER = 'x-csrf-token';

/** One logged-in browser. */
export interface Session {
  readonly id: string;
  readonly caller: Caller;
  readonly csrf: string;
  /** Unix ms after which the session is gone. */
  readonly expires: number;
}

/** Options of {@link SessionStore}. */
export interface SessionOptions {
  /** A session's life from its login. Default 12 hours. */
  readonly ttlMs?: number;
  /** The most sessions kept; a login past it ends the oldest. Default 10,000. */
  readonly max?: number;
  /** The clock (tests). Default Date.now. */
  readonly now?: () => number;
}

export class SessionStore {
  /** Insertion order is login order, so the first entry is the oldest. */
  private readonly sessions = new Map<string, Session>();
  private readonly ttlMs: number;
  private readonly max: number;
  private readonly now: () => number;

  constructor(opts: SessionOptions = {}) {
    this.ttlMs = opts.ttlMs ?? 12 * 3600_000;
    this.max = opts.max ?? 10_000;
    this.now = opts.now ?? Date.now;
  }

  /** A new session for `caller`. */
  create(caller: Caller): Session {
    const now = this.now();
    this.sweep(now);
    while (this.sessions.size >= this.max) {
      const oldest = this.sessions.keys().next().value;
      if (oldest === undefined) break;
      this.sessions.delete(oldest);
    }
    const session: Session = {
      id: randomBytes(32).toString('base64url'),
      caller,
      csrf: randomBytes(24).toString('base64url'),
      expires: now + this.ttlMs,
    };
    this.sessions.set(session.id, session);
    return session;
  }

  /** The live session `id` names, or undefined (unknown, or expired: then forgotten). */
  get(id: string): Session | undefined {
    const s = this.sessions.get(id);
    if (s === undefined) return undefined;
    if (s.expires <= this.now()) {
      this.sessions.delete(id);
      return undefined;
    }
    return s;
  }

  delete(id: string): void {
    this.sessions.delete(id);
  }

  get size(): number {
    return this.sessions.size;
  }

  /** The cookie that sets `session` (or, without one, clears the cookie). */
  cookie(session: Session | undefined, secure: boolean): string {
    const value = session?.id ?? '';
    const age =
      session === undefined ? 0 : Math.max(0, Math.floor((session.expires - this.now()) / 1000));
    return `${SESSION_COOKIE}=${value}; Path=/; Max-Age=${age}; HttpOnly; SameSite=Strict${secure ? '; Secure' : ''}`;
  }

  /** Drops expired sessions from the front (the oldest), at most a bounded number a call. */
  private sweep(now: number): void {
    let n = 0;
    for (const [id, s] of this.sessions) {
      if (s.expires > now || n++ > 1_000) break;
      this.sessions.delete(id);
    }
  }
}

/** The session cookie's value in `req`, if any (at most one looked at, bounded). */
export function sessionCookie(req: IncomingMessage): string | undefined {
  const header = req.headers.cookie;
  if (header === undefined || header.length > 8192) return undefined;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq < 0) continue;
    if (part.slice(0, eq).trim() === SESSION_COOKIE) {
      const value = part.slice(eq + 1).trim();
      return value === '' ? undefined : value;
    }
  }
  return undefined;
}

/** Whether `given` is the session's CSRF token, compared in constant time. */
export function csrfMatches(session: Session, given: string | undefined): boolean {
  if (given === undefined) return false;
  const a = Buffer.from(session.csrf);
  const b = Buffer.from(given);
  return a.length === b.length && timingSafeEqual(a, b);
}
