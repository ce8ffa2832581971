/**
 * One request through the listener: route it, pass the door (access.ts), give it a deadline
 * and a bounded body, run its handler, and answer whatever the handler throws as a JSON
 * error. Handlers never see a request the door refused.
 */
import type { Rights } from '../gate/rights.js';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Visible } from '../gate/interceptors.js';
import { toGrpcStatus } from '../gate/errors.js';
import {
  checkLoopbackHost,
  checkSameSite,
  identify,
  isWrite,
  needsCredentials,
  type Identified,
} from './access.js';
import { errorAnswer, HttpError, sendError, sendJson } from './errors.js';
import type { HttpCall, Router } from './router.js';
import type { HttpDeps } from './deps.js';

/** The listener's settings, fixed at start. */
export interface DispatchSettings {
  readonly router: Router;
  readonly deps: HttpDeps;
  readonly tls: boolean;
  /** The listener is on a loopback address (Host must be a loopback name). */
  readonly loopback: boolean;
  readonly maxBodyBytes: number;
  readonly deadlineMs: number;
}

/** Handles one request; never throws (every failure is answered). */
export function dispatch(s: DispatchSettings, req: IncomingMessage, res: ServerResponse): void {
  const { core, logger } = s.deps;
  const ctx = { endpoints: core.cluster.store.options.endpoints };
  const controller = new AbortController();
  res.on('close', () => controller.abort(new Error('the client went away')));
  const fail = (err: unknown): void => {
    const answer = errorAnswer(err, ctx);
    if (answer.status >= 500 && answer.status !== 503) {
      logger.error({ err, url: req.url?.slice(0, 200) }, 'HTTP request failed');
    }
    sendError(res, answer);
  };
  try {
    const url = new URL(req.url ?? '/', 'http://listener');
    if (s.loopback) checkLoopbackHost(req);
    const method = req.method ?? 'GET';
    const { route, params } = s.router.match(method, url.pathname);
    const who = identifyFor(route.access === 'public', core.gate, s.deps.sessions, req);
    if (route.access !== 'public' && core.gate.judges && who.credential === 'none') {
      throw needsCredentials();
    }
    if (isWrite(method)) {
      const own = `${s.tls ? 'https' : 'http'}://${req.headers.host ?? ''}`;
      checkSameSite(req, own, who, route.access !== 'public');
    }
    if (route.stream !== true) {
      const timer = setTimeout(() => {
        fail(
          new HttpError(
            504,
            'DEADLINE_EXCEEDED',
            `no answer within ${s.deadlineMs / 1000}s; try again`,
          ),
        );
        controller.abort(new Error('deadline'));
        res.destroy();
      }, s.deadlineMs);
      res.on('close', () => clearTimeout(timer));
    }
    const call: HttpCall = {
      req,
      res,
      url,
      params,
      caller: who.caller,
      signal: controller.signal,
      tls: s.tls,
      body: (max) => readBody(req, max ?? s.maxBodyBytes),
      json: (max) => readJson(req, max ?? s.maxBodyBytes),
      gated: async <Res>(
        grpcMethod: string,
        request: unknown,
        run: (visible: Visible | undefined, rights: Rights | undefined) => Promise<Res>,
      ): Promise<Res> => {
        const admitted = core.gate.admitAs(who.caller, grpcMethod, request);
        try {
          const response = await run(admitted.visible, admitted.rights);
          admitted.done(response, undefined);
          return response;
        } catch (err) {
          admitted.done(undefined, toGrpcStatus(err, ctx));
          throw err;
        }
      },
      admit: (grpcMethod, request) => {
        const admitted = core.gate.admitAs(who.caller, grpcMethod, request);
        admitted.done(undefined, undefined);
        return admitted.visible;
      },
      send: (code, body, headers) => sendJson(res, code, body, headers),
    };
    route.handler(call).catch(fail);
  } catch (err) {
    fail(err);
  }
}

/**
 * The caller; on a public route (login, health) credentials that fail count as none, so an
 * expired cookie never stands between a browser and its next login.
 */
function identifyFor(
  isPublic: boolean,
  gate: HttpDeps['core']['gate'],
  sessions: HttpDeps['sessions'],
  req: IncomingMessage,
): Identified {
  if (!isPublic) return identify(gate, sessions, req);
  try {
    return identify(gate, sessions, req);
  } catch {
    return { caller: { identity: 'anonymous', roles: [] }, credential: 'none' };
  }
}

/** The request's body, refused with 413 past `max` bytes (by its length, or as it comes). */
export async function readBody(req: IncomingMessage, max: number): Promise<Buffer> {
  const declared = Number(req.headers['content-length'] ?? NaN);
  if (declared > max) throw tooLarge(max);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    const b = chunk as Buffer;
    size += b.length;
    if (size > max) {
      req.destroy();
      throw tooLarge(max);
    }
    chunks.push(b);
  }
  return Buffer.concat(chunks);
}

function tooLarge(max: number): HttpError {
  return new HttpError(
    413,
    'PAYLOAD_TOO_LARGE',
    `the request body is larger than ${max} bytes, the most this API reads: send fewer or smaller unit files per request`,
  );
}

/** The body as JSON: `{}` when empty; 415 when it says it is something else; 400 when malformed. */
export async function readJson(req: IncomingMessage, max: number): Promise<unknown> {
  const type = req.headers['content-type'];
  const body = await readBody(req, max);
  if (body.length === 0) return {};
  if (type === undefined || !/^application\/json\b/i.test(type)) {
    throw new HttpError(
      415,
      'UNSUPPORTED_MEDIA_TYPE',
      'send the body as JSON with "Content-Type: application/json"',
    );
  }
  try {
    return JSON.parse(body.toString('utf8'));
  } catch (err) {
    const why = err instanceof Error ? err.message : String(err);
    throw new HttpError(
      400,
      'INVALID_ARGUMENT',
      `the body is not valid JSON (${why.slice(0, 200)})`,
    );
  }
}
