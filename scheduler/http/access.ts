/**
 * The listener's door, passed once per request before any handler runs: who calls (a bearer
 * token in `Authorization`, else the session cookie of a login, else the TLS client
 * certificate, else `anonymous`), and whether a write may come from where it comes from.
 *
 * Cross-site writes are refused (403) in three layers:
 * - a write (any method but GET and HEAD) whose `Sec-Fetch-Site` is neither `same-origin` nor
 *   `none`, or whose `Origin` is not this listener's own, is `CROSS_SITE_REQUEST`; a browser
 *   sends at least one of them with every POST;
 * - a write authenticated by the session cookie needs the session's token in `X-CSRF-Token`
 *   (`CSRF_TOKEN`): a page of another site can neither read the token nor set the header
 *   without a CORS preflight, which this listener never grants; a bearer token is never sent
 *   by a browser on its own, so it needs none;
 * - on a loopback listener, a `Host` that is not a loopback name is refused
 *   (`MISDIRECTED_REQUEST`, 421): a page of another site that rebinds its DNS name to
 *   127.0.0.1 is then no longer "same origin" with a listener that has no policy.
 */
import type { IncomingMessage } from 'node:http';
import type { TLSSocket } from 'node:tls';
import type { AuthContext, Caller } from '../gate/auth.js';
import type { ApiGuard } from '../gate/guard.js';
import { HttpError } from './errors.js';
import {
  csrfMatches,
  CSRF_HEADER,
  sessionCookie,
  type Session,
  type SessionStore,
} from './sessions.js';

/** How a request's caller was established. */
export type Credential = 'token' | 'session' | 'certificate' | 'none';

/** The request's caller and how it proved who it is. */
export interface Identified {
  readonly caller: Caller;
  readonly credential: Credential;
  readonly session?: Session;
}

/** What the TLS connection says of the client (its certificate), as the gate reads it. */
export function authContextOf(req: IncomingMessage): AuthContext | undefined {
  const socket = req.socket as Partial<TLSSocket>;
  if (typeof socket.getPeerCertificate !== 'function') return undefined;
  const cert = socket.getPeerCertificate();
  if (cert === null || Object.keys(cert).length === 0 || socket.authorized !== true) {
    return { transportSecurityType: 'ssl' };
  }
  return { transportSecurityType: 'ssl', sslPeerCertificate: cert };
}

/**
 * The caller of `req`. A bad token is 401 (UNAUTHENTICATED); a cookie naming no live
 * session is 401 too, saying to log in again. Without credentials the caller is anonymous;
 * whether that suffices is the route's and the policy's business.
 */
export function identify(gate: ApiGuard, sessions: SessionStore, req: IncomingMessage): Identified {
  const auth = authContextOf(req);
  const header = req.headers.authorization;
  if (header !== undefined) {
    return { caller: gate.identify(header, auth), credential: 'token' };
  }
  const id = sessionCookie(req);
  if (id !== undefined) {
    const session = sessions.get(id);
    if (session === undefined) {
      throw new HttpError(
        401,
        'UNAUTHENTICATED',
        'the session has expired or this scheduler does not know it: log in again (POST /api/v1/session)',
      );
    }
    return { caller: session.caller, credential: 'session', session };
  }
  const caller = gate.identify(undefined, auth);
  return { caller, credential: auth?.sslPeerCertificate === undefined ? 'none' : 'certificate' };
}

/** A caller that must prove who it is, and did not: 401 saying how. */
export function needsCredentials(): HttpError {
  return new HttpError(
    401,
    'UNAUTHENTICATED',
    'this scheduler requires credentials: send "Authorization: Bearer TOKEN", or log in with POST /api/v1/session {"token": "..."}',
  );
}

/** Whether `method` changes anything (and so is checked against cross-site requests). */
export function isWrite(method: string): boolean {
  return method !== 'GET' && method !== 'HEAD' && method !== 'OPTIONS';
}

/**
 * Refuses a write that comes from another site (see the file's comment); `ownOrigin` is this
 * listener's origin as the request names it (`https://host:port`).
 */
export function checkSameSite(
  req: IncomingMessage,
  ownOrigin: string,
  who: Identified,
  /** Whether a session's write needs its CSRF token (not for login and logout). */
  csrf = true,
): void {
  const site = header(req, 'sec-fetch-site');
  if (site !== undefined && site !== 'same-origin' && site !== 'none') {
    throw new HttpError(
      403,
      'CROSS_SITE_REQUEST',
      `a ${site} request may not change the cluster: use the console served by this scheduler, flotctl, or a client that is no browser page`,
    );
  }
  const origin = header(req, 'origin');
  if (origin !== undefined && origin !== ownOrigin) {
    throw new HttpError(
      403,
      'CROSS_SITE_REQUEST',
      `a request from ${origin.slice(0, 200)} may not change the cluster served at ${ownOrigin}`,
    );
  }
  if (csrf && who.credential === 'session' && who.session !== undefined) {
    if (!csrfMatches(who.session, header(req, CSRF_HEADER))) {
      throw new HttpError(
        403,
        'CSRF_TOKEN',
        `a write with the session cookie needs the session's CSRF token in the ${CSRF_HEADER} header (from POST or GET /api/v1/session)`,
      );
    }
  }
}

/**
 * Refuses a request to a loopback listener that names a host other than a loopback one
 * (DNS rebinding), 421.
 */
export function checkLoopbackHost(req: IncomingMessage): void {
  const host = header(req, 'host') ?? '';
  const name = host.startsWith('[') ? host.slice(1, host.indexOf(']')) : host.split(':')[0];
  if (name === 'localhost' || name === '::1' || /^127\.\d+\.\d+\.\d+$/.test(name ?? '')) return;
  throw new HttpError(
    421,
    'MISDIRECTED_REQUEST',
    `this scheduler listens on a loopback address and answers only requests for it, not for ${host.slice(0, 100)}: use http://127.0.0.1:PORT/`,
  );
}

function header(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  const one = Array.isArray(v) ? v[0] : v;
  return one === undefined || one.length > 4096 ? undefined : one;
}
