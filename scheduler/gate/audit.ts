/**
 * The audit log (`flotilla scheduler --audit-log FILE`): one JSON line per write through the
 * API, refused ones included, saying when, who, what method, on which units, with what result
 * and at which etcd revision. Nothing secret goes in: no token (only its name in the policy),
 * no unit file text, and no error text but the API's own refusals (a unit file's problem may
 * quote a line of it, with whatever Environment= holds).
 *
 * @example
 *   {"time":"2026-12-04T21:50:01.123Z","identity":"token:ci-team-a","method":"Units.SetDesiredState",
 *    "units":["team-a-web.service"],"result":"OK","revision":"1234"}
 */
import { status } from '@grpc/grpc-js';
import { excerpt } from '../../unit/index.js';
import { RotatingFile, type RotatingFileOptions } from '../../daemon/rotating-file.js';
import type { GrpcStatus } from './errors.js';

/** Unit names listed per line; a larger request lists these and says how many in all. */
export const AUDIT_MAX_UNITS = 100;

/** One audited call. */
export interface AuditEntry {
  readonly identity: string;
  readonly method: string;
  readonly units: readonly string[];
  readonly response: unknown;
  readonly failure: GrpcStatus | undefined;
}

/** Codes whose messages the API words itself, free of anything a request carried. */
const OWN_WORDS: ReadonlySet<status> = new Set([status.PERMISSION_DENIED, status.UNAUTHENTICATED]);

export class AuditLog {
  private readonly file: RotatingFile;

  constructor(path: string, opts: RotatingFileOptions = {}) {
    this.file = RotatingFile.open(path, opts);
  }

  get path(): string {
    return this.file.path;
  }

  write(e: AuditEntry, now = new Date()): void {
    const units = e.units.slice(0, AUDIT_MAX_UNITS).map((u) => excerpt(u, 256));
    const revision = revisionOf(e.response);
    const line = {
      time: now.toISOString(),
      identity: e.identity,
      method: e.method,
      units,
      ...(e.units.length > units.length ? { unitsTotal: e.units.length } : {}),
      result: e.failure === undefined ? 'OK' : status[e.failure.code],
      ...(e.failure !== undefined && OWN_WORDS.has(e.failure.code)
        ? { error: excerpt(e.failure.details, 1024) }
        : {}),
      ...(revision === undefined ? {} : { revision }),
    };
    this.file.writeLine(JSON.stringify(line));
  }

  close(): void {
    this.file.close();
  }
}

/** The etcd revision a write's response carries, as a decimal string. */
function revisionOf(response: unknown): string | undefined {
  if (response === null || typeof response !== 'object') return undefined;
  const r = (response as { revision?: unknown }).revision;
  return typeof r === 'bigint' && r > 0n ? r.toString() : undefined;
}
