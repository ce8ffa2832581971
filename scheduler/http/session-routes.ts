/**
 * `/api/v1/session`: a browser's login (POST: a bearer token exchanged for the session
 * cookie and the CSRF token its writes carry), who it is (GET: identity, roles and grants,
 * so the console shows only the controls the caller may use) and logout (DELETE).
 */
import type { Caller } from '../gate/auth.js';
import { authContextOf } from './access.js';
import { HttpError } from './errors.js';
import type { HttpCall, HttpHandler } from './router.js';
import type { HttpDeps } from './deps.js';
import { sessionCookie } from './sessions.js';

/** The most a login body may hold: a token. */
const LOGIN_MAX_BYTES = 8 * 1024;

/** The session routes' handlers. */
export function sessionRoutes(d: HttpDeps): {
  login: HttpHandler;
  whoami: HttpHandler;
  logout: HttpHandler;
} {
  const describe = (caller: Caller) => ({
    identity: caller.identity,
    roles: caller.roles,
    authorization: d.core.gate.judges ? 'policy' : 'off',
    grants: d.core.gate.grantsOf(caller).map((g) => ({
      verbs: [...g.verbs],
      units: g.units.map((u) => u.source),
    })),
  });
  return {
    login: async (call) => {
      const body = await call.json(LOGIN_MAX_BYTES);
      const token = isRecord(body) ? body['token'] : undefined;
      if (token !== undefined && (typeof token !== 'string' || token === '')) {
        throw new HttpError(
          400,
          'INVALID_ARGUMENT',
          'send {"token": "..."}: the token as a string',
        );
      }
      const auth = authContextOf(call.req);
      const caller =
        token === undefined
          ? d.core.gate.identify(undefined, auth)
          : d.core.gate.identify(`Bearer ${token}`, auth);
      if (d.core.gate.judges && token === undefined && auth?.sslPeerCertificate === undefined) {
        throw new HttpError(
          401,
          'UNAUTHENTICATED',
          'send {"token": "..."}: this scheduler requires a token',
        );
      }
      const old = sessionCookie(call.req);
      if (old !== undefined) d.sessions.delete(old);
      const session = d.sessions.create(caller);
      call.send(
        200,
        {
          ...describe(caller),
          csrfToken: session.csrf,
          expiresAt: new Date(session.expires).toISOString(),
        },
        { 'set-cookie': d.sessions.cookie(session, call.tls) },
      );
    },
    whoami: async (call: HttpCall) => {
      const id = sessionCookie(call.req);
      const session = id === undefined ? undefined : d.sessions.get(id);
      call.send(200, {
        ...describe(call.caller),
        ...(session === undefined
          ? {}
          : { csrfToken: session.csrf, expiresAt: new Date(session.expires).toISOString() }),
      });
    },
    logout: async (call) => {
      const id = sessionCookie(call.req);
      if (id !== undefined) d.sessions.delete(id);
      call.send(200, {}, { 'set-cookie': d.sessions.cookie(undefined, call.tls) });
    },
  };
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}
