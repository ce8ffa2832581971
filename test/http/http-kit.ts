/**
 * The HTTP tests' kit: a real HTTP listener on a free port over a real etcd (one per test
 * file), with the API core it shares with the gRPC server, and a small client that speaks
 * to it as a browser page or a script would.
 */
import type { ExecutionContext } from 'ava';
import { openApiCore, type ApiCore } from '../../scheduler/api/core.js';
import { parsePolicy } from '../../scheduler/gate/auth-policy.js';
import {
  startHttpServer,
  type HttpServer,
  type HttpServerOptions,
} from '../../scheduler/http/server.js';
import { openStore, type Store } from '../../store/index.js';
import { uniquePrefix, type EtcdServer } from '../../testkit/index.js';
import { quietLogger } from '../api/api-kit.js';

/** Every request a test makes carries this deadline: generous, a loaded box never flakes. */
export const REQUEST_TIMEOUT_MS = 20_000;

/** A listener for one test. */
export interface Http {
  readonly store: Store;
  readonly core: ApiCore;
  readonly server: HttpServer;
  /** `http://127.0.0.1:PORT` */
  readonly url: string;
  /** A request; JSON bodies are sent with their content type. */
  fetch(path: string, init?: RequestOptions): Promise<Answer>;
}

export interface RequestOptions {
  readonly method?: string;
  readonly body?: unknown;
  readonly headers?: Readonly<Record<string, string>>;
  readonly token?: string;
}

export interface Answer {
  readonly status: number;
  readonly headers: Headers;
  readonly text: string;
  /** The body parsed as JSON (undefined when it is not JSON). */
  readonly json: JsonObject;
}

export type JsonObject = Record<string, unknown> & {
  error?: {
    code: string;
    message: string;
    problems?: { file: string; line: number; message: string }[];
  };
};

/** Starts a listener over `etcd` under a fresh prefix; `policy` is the JSON of an auth policy. */
export async function startHttp(
  t: ExecutionContext,
  etcd: EtcdServer,
  opts: { policy?: string } & Partial<Omit<HttpServerOptions, 'core' | 'logger'>> = {},
): Promise<Http> {
  const store = openStore({ endpoints: etcd.endpoint, prefix: uniquePrefix(t.title) });
  const core = openApiCore({
    store,
    logger: quietLogger,
    ...(opts.policy === undefined ? {} : { policy: parsePolicy('policy.json', opts.policy) }),
  });
  const server = await startHttpServer({
    listen: '127.0.0.1:0',
    ...opts,
    core,
    logger: quietLogger,
  });
  t.teardown(async () => {
    await server.close();
    await core.close();
    store.close();
  });
  return {
    store,
    core,
    server,
    url: server.url,
    fetch: (path, init) => request(server.url, path, init),
  };
}

/** One request to `base + path`. */
export async function request(
  base: string,
  path: string,
  init: RequestOptions = {},
): Promise<Answer> {
  const headers: Record<string, string> = { ...init.headers };
  if (init.token !== undefined) headers['authorization'] = `Bearer ${init.token}`;
  let body: string | undefined;
  if (init.body !== undefined) {
    body = typeof init.body === 'string' ? init.body : JSON.stringify(init.body);
    headers['content-type'] ??= 'application/json';
  }
  const res = await fetch(base + path, {
    method: init.method ?? (body === undefined ? 'GET' : 'POST'),
    headers,
    ...(body === undefined ? {} : { body }),
    signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
  });
  const text = await res.text();
  let json: JsonObject = {};
  try {
    json = JSON.parse(text) as JsonObject;
  } catch {
    // not JSON: the test reads `text`
  }
  return { status: res.status, headers: res.headers, text, json };
}

/** A unit file `{name, contents}` for a submit. */
export function file(name: string, contents: string): { name: string; contents: string } {
  return { name, contents };
}
