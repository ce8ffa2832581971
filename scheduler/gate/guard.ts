/**
 * The door of every API call ({@link CallGate}): identifies and authorizes the caller when a
 * policy is set, then, when the call ends, counts it (metrics) and, for writes, records it in
 * the audit log. A refused call is counted and audited here, since no handler ever runs.
 *
 * Streams (Events.Watch, Logs.Tail) pass the same door through interceptors.ts's
 * guardStream; they are counted when they are admitted, not when they end.
 */
import { status } from '@grpc/grpc-js';
import type { Logger } from 'pino';
import type { Grant, Policy } from './auth-policy.js';
import { Authorizer, ruleOf, unjudgedCaller, type AuthContext, type Caller } from './auth.js';
import type { AuditLog } from './audit.js';
import type { Rights } from './rights.js';
import { toGrpcStatus, type GrpcStatus } from './errors.js';
import type { Admitted, CallGate, GatedCall, Visible } from './interceptors.js';

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

  /**
   * Who calls, from an `authorization` header and the TLS peer: what the HTTP listener
   * resolves once per request. UNAUTHENTICATED for a malformed or unknown token.
   */
  identify(authorization: string | undefined, auth: AuthContext | undefined): Caller {
    if (this.authorizer === undefined) return unjudgedCaller(auth);
    return this.authorizer.identifyBy(authorization, auth);
  }

  /** Whether a policy judges callers (without one, everyone may do everything). */
  get judges(): boolean {
    return this.authorizer !== undefined;
  }

  /**
   * {@link admit} for a caller already identified (an HTTP request): authorizes `method` on
   * `request` as the gRPC call would be, and counts and audits it alike.
   */
  admitAs(caller: Caller, method: string, request: unknown): Admitted {
    const started = performance.now();
    let visible: Visible | undefined;
    let rights: Rights | undefined;
    try {
      visible = this.authorizer?.authorize(caller, method, request);
      rights = this.authorizer?.rights(caller);
    } catch (err) {
      this.refused(caller, method, request, started, err);
      throw err;
    }
    return {
      ...(visible === undefined ? {} : { visible }),
      ...(rights === undefined ? {} : { rights }),
      done: (response, failure) => this.finish(caller, method, request, started, response, failure),
    };
  }

  /** The grants of the caller's roles (for a client to show only what it may do). */
  grantsOf(caller: Caller): readonly Grant[] {
    if (this.opts.policy === undefined) return [];
    return caller.roles.flatMap((r) => this.opts.policy?.roles.get(r) ?? []);
  }

  admit(call: GatedCall, method: string): Admitted {
    const started = performance.now();
    let caller: Caller = { identity: 'anonymous', roles: [] };
    let visible: Visible | undefined;
    let rights: Rights | undefined;
    try {
      if (this.authorizer === undefined) {
        caller = unjudgedCaller(call.getAuthContext());
      } else {
        caller = this.authorizer.identify(call.metadata, call.getAuthContext());
        visible = this.authorizer.authorize(caller, method, call.request);
        rights = this.authorizer.rights(caller);
      }
    } catch (err) {
      this.refused(caller, method, call.request, started, err);
      throw err;
    }
    return {
      ...(visible === undefined ? {} : { visible }),
      ...(rights === undefined ? {} : { rights }),
      done: (response, failure) =>
        this.finish(caller, method, call.request, started, response, failure),
    };
  }

  private refused(
    caller: Caller,
    method: string,
    request: unknown,
    started: number,
    err: unknown,
  ): void {
    const s = toGrpcStatus(err, { endpoints: [] });
    this.opts.logger.info(
      { method, identity: caller.identity, code: status[s.code], why: s.details },
      'API call refused',
    );
    this.finish(caller, method, request, started, undefined, s);
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
