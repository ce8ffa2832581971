/**
 * How the HTTP listener answers a failure: a JSON body `{"error":{"code","message"}}` with a
 * stable code and the HTTP status it maps to. The API's errors (ApiError, UnitError,
 * StoreError) go through the gate's one translation into gRPC statuses, and each status maps
 * to one HTTP status here, so a refusal reads the same through either door. What only HTTP
 * can get wrong (an unknown path, a body too large, a cross-site write) is an
 * {@link HttpError} with a code of its own.
 */
import { status } from '@grpc/grpc-js';
import type { ServerResponse } from 'node:http';
import { excerpt, UnitError } from '../../unit/index.js';
import {
  ApiError,
  boundDetails,
  toGrpcStatus,
  type ErrorContext,
  type GrpcStatus,
} from '../gate/errors.js';

/** A refusal decided by the listener itself; `code` is stable, `message` says what to do. */
export class HttpError extends Error {
  override readonly name = 'HttpError';

  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    /** Extra headers of the answer (e.g. `allow` of a 405). */
    readonly headers: Readonly<Record<string, string>> = {},
  ) {
    super(message);
  }
}

/** gRPC status -> HTTP status. */
const HTTP_STATUS: Readonly<Partial<Record<status, number>>> = {
  [status.INVALID_ARGUMENT]: 400,
  [status.OUT_OF_RANGE]: 400,
  [status.NOT_FOUND]: 404,
  [status.ALREADY_EXISTS]: 409,
  [status.FAILED_PRECONDITION]: 409,
  [status.ABORTED]: 409,
  [status.PERMISSION_DENIED]: 403,
  [status.UNAUTHENTICATED]: 401,
  [status.RESOURCE_EXHAUSTED]: 429,
  [status.UNAVAILABLE]: 503,
  [status.DEADLINE_EXCEEDED]: 504,
  [status.CANCELLED]: 499,
};

/** How long a client told 429 or 503 waits before trying again, in seconds. */
export const RETRY_AFTER_SECONDS = 2;

/** One problem of a unit file, where the file has it (submit and plan answer these). */
export interface HttpProblem {
  readonly file: string;
  /** 1-based; 0 when the problem is not on one line. */
  readonly line: number;
  readonly message: string;
}

/** An error's answer: HTTP status, the JSON body, and headers. */
export interface ErrorAnswer {
  readonly status: number;
  readonly body: {
    readonly error: {
      readonly code: string;
      readonly message: string;
      readonly problems?: readonly HttpProblem[];
    };
  };
  readonly headers: Readonly<Record<string, string>>;
}

/** The answer to whatever a handler threw. */
export function errorAnswer(err: unknown, ctx: ErrorContext): ErrorAnswer {
  if (err instanceof HttpError) {
    return {
      status: err.status,
      body: { error: { code: err.code, message: boundDetails(err.message) } },
      headers: err.headers,
    };
  }
  const problems =
    err instanceof ApiError
      ? err.problems
      : err instanceof UnitError
        ? [
            {
              file: excerpt(err.file ?? '', 256),
              line: err.line,
              message: excerpt(err.message, 1000),
            },
          ]
        : undefined;
  return statusAnswer(toGrpcStatus(err, ctx), problems);
}

/** The answer to a gRPC status (a relayed stream's failure). */
export function statusAnswer(s: GrpcStatus, problems?: readonly HttpProblem[]): ErrorAnswer {
  const http = HTTP_STATUS[s.code] ?? 500;
  return {
    status: http,
    body: {
      error: {
        code: status[s.code] ?? 'INTERNAL',
        message: boundDetails(s.details),
        ...(problems === undefined ? {} : { problems }),
      },
    },
    headers: http === 429 || http === 503 ? { 'retry-after': String(RETRY_AFTER_SECONDS) } : {},
  };
}

/** Sends `answer` unless the response has begun (a stream that failed midway just ends). */
export function sendError(res: ServerResponse, answer: ErrorAnswer): void {
  if (res.headersSent) {
    res.end();
    return;
  }
  sendJson(res, answer.status, answer.body, answer.headers);
}

/** Sends `body` as JSON, never cached (every answer describes the cluster now). */
export function sendJson(
  res: ServerResponse,
  code: number,
  body: unknown,
  headers: Readonly<Record<string, string>> = {},
): void {
  const text = JSON.stringify(body);
  res.writeHead(code, {
    'content-type': 'application/json; charset=utf-8',
    'cache-control': 'no-store',
    'content-length': String(Buffer.byteLength(text)),
    ...headers,
  });
  res.end(res.req.method === 'HEAD' ? undefined : text);
}
