/**
 * The door of every API call ({@link CallGate}): identifies and authorizes the caller when a
 * policy is set, then, when the call ends, counts it (metrics) and, for writes, records it in
 * the audit log. A refused call is counted and audited here, since no handler ever runs.
 *
 * Streams (Events.Watch, Logs.Tail) pass the same door through {@link guardStream}; they are
 * counted when they are admitted, not when they end.
 */
import { status, type ServerWritableStream } from '@grpc/grpc-js';
import type { Logger } from 'pino';
import type { Policy } from './auth-policy.js';
import { Authorizer, ruleOf, unjudgedCaller, type Caller } from './auth.js';
import type { AuditLog } from './audit.js';
import {
  logFailure,
  toGrpcStatus,
  toServiceError,
  type Admitted,
  type CallGate,
  type ErrorContext,
  type GatedCall,
  type GrpcStatus,
  type Visible,
} from './errors.js';

/** Where the API's request counts and durations go (scheduler/metrics.ts). */
export interface ApiMetrics {
  /** One finished call: `code` is the gRPC status name, e.g. `OK`, `PERMISSION_DENIED`. */
  observe(method: string, code: string, seconds: number): void;
}

/** Options of {@link ApiGuard}. */
export interface ApiGuardOptions {
  /** Without one, every caller may do everything (and is named by its certificate, if any). */
  readonly policy?: Policy;
  readonly audit?: AuditLog;
  readonly metrics?: ApiMetrics;
  readonly logger: Logger;
}

export class ApiGuard implements CallGate {
  private readonly authorizer: Authorizer | undefined;

  constructor(private readonly opts: ApiGuardOptions) {
    this.authorizer = opts.policy === undefined ? undefined : new Authorizer(opts.policy);
  }

  admit(call: GatedCall, method: string): Admitted {
    const started = performance.now();
    let caller: Caller = { identity: 'anonymous', roles: [] };
    let visible: Visible | undefined;
    try {
      if (this.authorizer === undefined) {
        caller = unjudgedCaller(call.getAuthContext());
      } else {
        caller = this.authorizer.identify(call.metadata, call.getAuthContext());
        visible = this.authorizer.authorize(caller, method, call.request);
      }
    } catch (err) {
      const s = toGrpcStatus(err, { endpoints: [] });
      this.opts.logger.info(
        { method, identity: caller.identity, code: status[s.code], why: s.details },
        'API call refused',
      );
      this.finish(caller, method, call.request, started, undefined, s);
      throw err;
    }
    return {
      ...(visible === undefined ? {} : { visible }),
      done: (response, failure) =>
        this.finish(caller, method, call.request, started, response, failure),
    };
  }

  private finish(
    caller: Caller,
    method: string,
    request: unknown,
    started: number,
    response: unknown,
    failure: GrpcStatus | undefined,
  ): void {
    const code = failure === undefined ? 'OK' : (status[failure.code] ?? 'UNKNOWN');
    this.opts.metrics?.observe(method, code, (performance.now() - started) / 1000);
    const rule = ruleOf(method);
    if (!rule.write || this.opts.audit === undefined) return;
    try {
      this.opts.audit.write({
        identity: caller.identity,
        method,
        units: rule.units?.(request) ?? [],
        response,
        failure,
      });
    } catch (err) {
      // A full disk must not fail the write that already happened; say so loudly.
      this.opts.logger.error({ err, method, file: this.opts.audit.path }, 'audit log write failed');
    }
  }
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
