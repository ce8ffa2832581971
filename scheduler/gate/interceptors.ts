/**
 * The gRPC interceptors: the adapters that put every API handler behind the gate. A unary
 * handler ({@link unary}) or a stream ({@link guardStream}) is admitted by the {@link CallGate}
 * first, so a refused call runs nothing and writes nothing; whatever the handler throws is
 * translated once, at this boundary, by the API's error translation (errors.ts), logged,
 * and told to the gate.
 */
import type { sendUnaryData, ServerUnaryCall, ServerWritableStream } from '@grpc/grpc-js';
import type { Logger } from 'pino';
import type { Rights } from './rights.js';
import {
  logFailure,
  toGrpcStatus,
  toServiceError,
  type ErrorContext,
  type GrpcStatus,
} from './errors.js';

/**
 * What stands at the door of every call (guard.ts's ApiGuard): `admit` runs before the
 * handler and throws to refuse the call, so a refused call runs nothing and writes nothing;
 * `done` hears every call's outcome (metrics, the audit log).
 */
export interface CallGate {
  admit(call: GatedCall, method: string): Admitted;
}

/** What the gate reads of a call, unary or stream. */
export type GatedCall = Pick<ServerUnaryCall<unknown, unknown>, 'metadata' | 'getAuthContext'> & {
  readonly request: unknown;
};

/** A call let in; `done` is told how it ended (`status` undefined: OK). */
export interface Admitted {
  /** Set when a listing or watch may show only some units: which. */
  readonly visible?: Visible;
  /** Set under a policy: what the caller may do, for handlers that judge contents. */
  readonly rights?: Rights;
  done(response: unknown, failure: GrpcStatus | undefined): void;
}

/** Whether the caller may see unit `name` (a narrowed listing or watch). */
export type Visible = (name: string) => boolean;

/** Shared by every handler adapter: how to word and log failures, and the gate, if any. */
export interface HandlerContext extends ErrorContext {
  readonly logger: Logger;
  readonly gate?: CallGate;
}

/**
 * Adapts an async handler to grpc-js's unary callback style, translating whatever it throws
 * exactly once.
 */
export function unary<Req, Res>(
  ctx: HandlerContext,
  method: string,
  handler: (request: Req, visible: Visible | undefined, rights: Rights | undefined) => Promise<Res>,
): (call: ServerUnaryCall<Req, Res>, callback: sendUnaryData<Res>) => void {
  return (call, callback) => {
    let admitted: Admitted | undefined;
    new Promise<Res>((resolve) => {
      admitted = ctx.gate?.admit(call, method);
      resolve(handler(call.request, admitted?.visible, admitted?.rights));
    }).then(
      (response) => {
        admitted?.done(response, undefined);
        callback(null, response);
      },
      (err: unknown) => {
        const s = toGrpcStatus(err, ctx);
        logFailure(ctx.logger, method, s, err);
        // A refused call was never admitted: the gate itself accounts for it.
        admitted?.done(undefined, s);
        callback(toServiceError(s));
      },
    );
  };
}

/**
 * A stream handler behind the gate: a refused stream ends at once with its status; an
 * admitted one is counted as OK and handed to `handler`.
 */
export function guardStream<Req, Res>(
  gate: CallGate | undefined,
  ctx: ErrorContext & { readonly logger: Logger },
  method: string,
  handler: (call: ServerWritableStream<Req, Res>, visible: Visible | undefined) => void,
): (call: ServerWritableStream<Req, Res>) => void {
  if (gate === undefined) return (call) => handler(call, undefined);
  return (call) => {
    let admitted: Admitted;
    try {
      admitted = gate.admit(call, method);
    } catch (err) {
      const s = toGrpcStatus(err, ctx);
      logFailure(ctx.logger, method, s, err);
      call.emit('error', toServiceError(s));
      return;
    }
    admitted.done(undefined, undefined);
    handler(call, admitted.visible);
  };
}
