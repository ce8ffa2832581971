/**
 * The console's one door to the scheduler's JSON API (docs/http-api.md): same-origin requests
 * with the session cookie, the session's CSRF token on every write (a page of another site
 * can neither read it nor send the header), a deadline on every call, and the API's errors
 * (`{"error": {"code", "message"}}`) as {@link ApiFailure}.
 */

/** Every call gives up after this long (the API's own deadlines are shorter). */
export const CALL_TIMEOUT_MS = 30_000;

/** An answer that was not 2xx: the API's stable code and its message for people. */
export class ApiFailure extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly body: unknown,
  ) {
    super(message);
  }
}

/** Set when the API answers 401: the app shows the login page. */
let onUnauthenticated: (() => void) | undefined;
export function whenUnauthenticated(fn: () => void): void {
  onUnauthenticated = fn;
}

/** The CSRF token the login answered with (cookie sessions need it on writes). */
let csrfToken = '';
export function setCsrfToken(token: string): void {
  csrfToken = token;
}

function errorOf(status: number, body: unknown): ApiFailure {
  const e = (body as { error?: { code?: unknown; message?: unknown } } | null)?.error;
  const code = typeof e?.code === 'string' ? e.code : `http-${status}`;
  const message = typeof e?.message === 'string' ? e.message : `the scheduler answered ${status}`;
  return new ApiFailure(status, code, message.slice(0, 4000), body);
}

/** Calls the API; resolves with the parsed JSON body (undefined when empty). */
export async function call<T>(method: string, path: string, body?: unknown): Promise<T> {
  const ctl = new AbortController();
  const timer = setTimeout(() => ctl.abort(), CALL_TIMEOUT_MS);
  try {
    const headers: Record<string, string> = { accept: 'application/json' };
    if (method !== 'GET') {
      // A session's writes carry its CSRF token (a bearer-token caller needs none).
      if (csrfToken !== '') headers['x-csrf-token'] = csrfToken;
      headers['content-type'] = 'application/json';
    }
    const res = await fetch(path, {
      method,
      headers,
      credentials: 'same-origin',
      signal: ctl.signal,
      ...(method !== 'GET' && { body: JSON.stringify(body ?? {}) }),
    });
    const text = await res.text();
    let parsed: unknown;
    try {
      parsed = text === '' ? undefined : JSON.parse(text);
    } catch {
      parsed = text;
    }
    if (!res.ok) {
      if (res.status === 401) onUnauthenticated?.();
      throw errorOf(res.status, parsed);
    }
    return parsed as T;
  } catch (err) {
    if (err instanceof ApiFailure) throw err;
    if (ctl.signal.aborted) {
      throw new ApiFailure(0, 'timeout', `no answer within ${CALL_TIMEOUT_MS / 1000}s`, null);
    }
    throw new ApiFailure(0, 'network', `the scheduler is unreachable: ${String(err)}`, null);
  } finally {
    clearTimeout(timer);
  }
}

export const enc = encodeURIComponent;
