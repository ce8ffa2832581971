/**
 * The HTTP listener's route table: each route is a method, a path pattern and a handler,
 * matched in order. A pattern's `:name` segment matches one path segment (percent-decoded,
 * never `/`); a final `*name` matches the rest of the path (for static files). HEAD is
 * answered by GET routes.
 *
 * @example
 *   const routes: HttpRoute[] = [
 *     { method: 'GET', path: '/api/v1/units/:name', handler: getUnitRoute },
 *     { method: 'GET', path: '/ui/*path', access: 'public', handler: serveConsole },
 *   ];
 *   new Router(routes).match('GET', '/api/v1/units/web%401.service'); // params.name 'web@1.service'
 */
import type { Rights } from '../gate/rights.js';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Caller } from '../gate/auth.js';
import type { Visible } from '../gate/interceptors.js';
import { HttpError } from './errors.js';

export type HttpMethod = 'GET' | 'POST' | 'PUT' | 'DELETE';

/**
 * One request as a handler sees it, its caller already identified (once per request, by the
 * listener's gate: bearer token, session cookie or client certificate) and, for writes,
 * already checked against cross-site requests.
 */
export interface HttpCall {
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  readonly url: URL;
  /** The pattern's `:name` and `*name` segments, decoded. */
  readonly params: Readonly<Record<string, string>>;
  /** Who calls (`anonymous` on a public route without credentials). */
  readonly caller: Caller;
  /** Aborted when the client goes away or the request's deadline passes. */
  readonly signal: AbortSignal;
  /** Whether the listener serves TLS (a cookie it sets is then Secure). */
  readonly tls: boolean;
  /** The body, at most `maxBytes` (default the listener's limit); 413 beyond. */
  body(maxBytes?: number): Promise<Buffer>;
  /** The body parsed as JSON (an empty body is `{}`); 415 unless it is JSON, 400 if malformed. */
  json(maxBytes?: number): Promise<unknown>;
  /**
   * Runs `run` behind the API's gate as the gRPC method `method` (`Units.SetDesiredState`)
   * with `request`: authorized by the same policy rule (PERMISSION_DENIED before anything
   * runs), counted in the same metrics and, for writes, written to the same audit log.
   * `visible` narrows a listing the caller may only partly read; `rights` is what the
   * caller's roles grant, for the checks a handler makes beyond the method's names (a unit
   * file's capabilities, the units its scheduling keys name), as gRPC handlers get them.
   */
  gated<Res>(
    method: string,
    request: unknown,
    run: (visible: Visible | undefined, rights: Rights | undefined) => Promise<Res>,
  ): Promise<Res>;
  /**
   * For streams: authorizes `method` on `request` and counts it as admitted; returns the
   * narrowing, if any. Throws PERMISSION_DENIED.
   */
  admit(method: string, request: unknown): Visible | undefined;
  /** Sends a JSON answer. */
  send(code: number, body: unknown, headers?: Readonly<Record<string, string>>): void;
}

/** A route's handler; what it throws is answered as a JSON error (errors.ts). */
export type HttpHandler = (call: HttpCall) => Promise<void>;

/** One line of the route table. */
export interface HttpRoute {
  readonly method: HttpMethod;
  /** `/api/v1/units/:name`, `/ui/*path`; literal segments compare exactly. */
  readonly path: string;
  /**
   * `public`: served without credentials (health, metrics, login, the console's files);
   * `caller` (default): a policy that judges callers needs one, else 401.
   */
  readonly access?: 'public' | 'caller';
  /**
   * Whether the route streams (SSE, a followed log): it has no response deadline, only
   * its own bounds. Default false: the answer must be sent within the listener's deadline.
   */
  readonly stream?: boolean;
  readonly handler: HttpHandler;
}

/** A matched route and its parameters. */
export interface RouteMatch {
  readonly route: HttpRoute;
  readonly params: Readonly<Record<string, string>>;
}

interface Compiled {
  readonly route: HttpRoute;
  readonly segments: readonly string[];
}

/** The most path segments a request may have (longer paths match nothing). */
const MAX_SEGMENTS = 32;

export class Router {
  private readonly compiled: readonly Compiled[];

  constructor(routes: readonly HttpRoute[]) {
    this.compiled = routes.map((route) => ({ route, segments: split(route.path) }));
  }

  /**
   * The route for `method` and `path`; throws 404 when no route has the path, 405 (with the
   * methods it has) when no route of the path takes the method.
   */
  match(method: string, path: string): RouteMatch {
    const segments = split(path);
    const allowed = new Set<string>();
    if (segments.length <= MAX_SEGMENTS) {
      for (const c of this.compiled) {
        const params = matchSegments(c.segments, segments);
        if (params === undefined) continue;
        if (c.route.method === method || (method === 'HEAD' && c.route.method === 'GET')) {
          return { route: c.route, params };
        }
        allowed.add(c.route.method);
      }
    }
    if (allowed.size === 0) {
      throw new HttpError(
        404,
        'NOT_FOUND',
        `no such path: ${path.slice(0, 200)}; see docs/http-api.md`,
      );
    }
    const allow = [...allowed].join(', ');
    throw new HttpError(405, 'METHOD_NOT_ALLOWED', `${method} is not served here; use ${allow}`, {
      allow,
    });
  }
}

function split(path: string): string[] {
  return path.split('/').filter((s, i) => i > 0 || s !== '');
}

function matchSegments(
  pattern: readonly string[],
  path: readonly string[],
): Record<string, string> | undefined {
  const params: Record<string, string> = {};
  for (let i = 0; i < pattern.length; i++) {
    const p = pattern[i] as string;
    if (p.startsWith('*')) {
      params[p.slice(1)] = path.slice(i).map(decode).join('/');
      return params;
    }
    const s = path[i];
    if (s === undefined) return undefined;
    if (p.startsWith(':')) {
      const value = decode(s);
      if (value === '' || value.includes('/')) return undefined;
      params[p.slice(1)] = value;
    } else if (p !== s) return undefined;
  }
  return path.length === pattern.length ? params : undefined;
}

function decode(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    throw new HttpError(
      400,
      'INVALID_ARGUMENT',
      `the path segment ${segment.slice(0, 100)} is not valid percent-encoding`,
    );
  }
}
