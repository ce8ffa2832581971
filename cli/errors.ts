/**
 * flotctl's one error type and the one place gRPC failures become words. Every failure a verb
 * reports is a {@link CliError}: main prints its message (one line a person can act on, or
 * the server's `file:line: message` lines for a rejected unit file) and exits 1.
 */
import { status, type ServiceError } from '@grpc/grpc-js';
import { formatDuration } from '../lib/duration.js';
import { tlsFailure, type TlsFailure } from '../lib/tls-failure.js';
// The light files of unit/, not its index: the index loads the whole unit parser (about 8 ms
// of every flotctl start; docs/benchmarks.md).
import { formatBytes } from '../unit/excerpt.js';
import { SUBMIT_MAX_BYTES, UNIT_FILE_MAX_BYTES } from '../unit/limits.js';
import { CA_FILE_ENV, CERT_FILE_ENV, ENDPOINT_ENV, KEY_FILE_ENV } from './global-options.js';
import type { ClientTlsFiles } from './verb.js';
import { CliError } from './cli-error.js';

export { CliError, type CliErrorCode } from './cli-error.js';

/** True for a grpc-js ServiceError. */
export function isServiceError(err: unknown): err is ServiceError {
  return (
    err instanceof Error &&
    typeof (err as Partial<ServiceError>).code === 'number' &&
    'details' in err
  );
}

/** What the translation needs to word an error. */
export interface ErrorContext {
  readonly endpoint: string;
  readonly requestTimeoutMs: number;
  /** Whether the server has answered on this connection (a call succeeded, or it is READY). */
  readonly connected: boolean;
  /** TLS towards the API; undefined: plaintext. */
  readonly tls?: ClientTlsFiles | undefined;
}

/** The sentence for an API that cannot be reached. */
export function unreachableMessage(endpoint: string): string {
  return `cannot reach the Flotilla API at ${endpoint}: is a scheduler running? (set --endpoint or ${ENDPOINT_ENV})`;
}

/** Translates a failed call (a ServiceError or anything else) into a CliError, once. */
export function toCliError(err: unknown, ctx: ErrorContext): CliError {
  if (err instanceof CliError) return err;
  if (!isServiceError(err)) {
    return new CliError('internal', err instanceof Error ? err.message : String(err));
  }
  // grpc-js appends an empty "Resolution note: " to connection errors; it says nothing.
  const details = (err.details === '' ? err.message : err.details).replace(
    /\.? Resolution note: ?$/,
    '',
  );
  switch (err.code) {
    case status.UNAVAILABLE:
      // Not connected: the failure is the connection's (maybe its TLS handshake). Connected:
      // the server said it (for example that etcd is down), and its words are the useful ones.
      if (!ctx.connected) {
        const tls = tlsMessage(details, ctx);
        if (tls !== undefined) return new CliError('tls', tls, err.code);
        return new CliError('unreachable', unreachableMessage(ctx.endpoint), err.code);
      }
      if (/Connection dropped/.test(details)) {
        return new CliError(
          'unavailable',
          `lost the connection to the Flotilla API at ${ctx.endpoint}; try again`,
          err.code,
        );
      }
      return new CliError('unavailable', details, err.code);
    case status.DEADLINE_EXCEEDED: {
      const secs = formatSeconds(ctx.requestTimeoutMs);
      if (!ctx.connected) {
        return new CliError(
          'unreachable',
          `${unreachableMessage(ctx.endpoint)} (no answer within ${secs})`,
          err.code,
        );
      }
      return new CliError(
        'deadline',
        `the Flotilla API at ${ctx.endpoint} did not answer within ${secs} (raise --request-timeout)`,
        err.code,
      );
    }
    case status.UNIMPLEMENTED:
      return new CliError(
        'refused',
        `the server at ${ctx.endpoint} does not implement this call: is it a Flotilla scheduler of a matching version?`,
        err.code,
      );
    case status.ALREADY_EXISTS:
      return new CliError(
        'refused',
        details.replace(/\(set replace to overwrite\)/, '(use --replace to overwrite it)'),
        err.code,
      );
    case status.INVALID_ARGUMENT:
    case status.NOT_FOUND:
    case status.FAILED_PRECONDITION:
    case status.OUT_OF_RANGE:
    case status.ABORTED:
    case status.PERMISSION_DENIED:
    case status.UNAUTHENTICATED:
      return new CliError('refused', details, err.code);
    case status.CANCELLED:
      return new CliError('internal', 'the call was cancelled', err.code);
    case status.RESOURCE_EXHAUSTED:
      // The API's quota guard (etcd nearly full) words its refusal for people; grpc-js's
      // refusal of a request too large to read does not.
      return tooLarge(details, ctx) ?? new CliError('refused', details, err.code);
    default:
      return new CliError('internal', `${details} (${status[err.code] ?? err.code})`, err.code);
  }
}

/**
 * grpc-js's refusal of a request larger than the server reads, "Received message larger than
 * max (N vs M)", as a line naming the limit and what to do; undefined for other exhaustion.
 * flotctl reads answers of any size (see client.ts), so the refusal is the server's.
 */
function tooLarge(details: string, ctx: ErrorContext): CliError | undefined {
  const m = /larger than max \((\d+) vs\.? (\d+)\)/.exec(details);
  if (m === null) return undefined;
  const [size, max] = [Number(m[1]), Number(m[2])];
  return new CliError(
    'too-large',
    `the request is ${formatBytes(size)} (${size} bytes), more than the ${formatBytes(max)} the Flotilla API at ${ctx.endpoint} reads in one call: send fewer or smaller unit files at once (a unit file may be at most ${formatBytes(UNIT_FILE_MAX_BYTES)}, one submit at most ${formatBytes(SUBMIT_MAX_BYTES)})`,
    status.RESOURCE_EXHAUSTED,
  );
}

function tlsMessage(details: string, ctx: ErrorContext): string | undefined {
  const failure = tlsFailure(details);
  return failure === undefined ? undefined : tlsFailureMessage(ctx.endpoint, failure, ctx.tls);
}

/**
 * The line for a connection to the API at `endpoint` that failed as `failure` says, with
 * `tls` (undefined: plaintext); undefined when the failure is no TLS matter after all.
 */
function tlsFailureMessage(
  endpoint: string,
  failure: TlsFailure,
  tls: ClientTlsFiles | undefined,
): string | undefined {
  const api = `the Flotilla API at ${endpoint}`;
  const why = `(${failure.reason})`;
  const passCa = `pass --ca-file with the CA that signed it (or set ${CA_FILE_ENV})`;
  switch (failure.kind) {
    case 'untrusted':
      return tls?.caFile === undefined
        ? `${api} presented a certificate that is not trusted ${why}: ${passCa}`
        : `${api} presented a certificate not signed by the CA in --ca-file=${tls.caFile} ${why}: ${passCa}`;
    case 'wrong-name':
      return `the certificate of ${api} does not name that address ${why}: use an --endpoint it names`;
    case 'refused':
      return tls?.certFile === undefined
        ? `${api} requires a client certificate ${why}: pass --cert-file and --key-file (or set ${CERT_FILE_ENV} and ${KEY_FILE_ENV})`
        : `${api} refused the client certificate --cert-file=${tls.certFile} ${why}: it must be signed by the CA the API trusts (its --tls-client-ca-file)`;
    case 'not-tls':
      return `${api} does not speak TLS ${why}: leave out --ca-file, --cert-file and --key-file (and https://)`;
    case 'dropped':
      if (tls === undefined) {
        return `${api} closed a plaintext connection at once: it probably requires TLS: pass --ca-file with the CA that signed its certificate (or set ${CA_FILE_ENV})`;
      }
      if (tls.certFile !== undefined) {
        return `${api} closed the connection after the TLS handshake: it probably refuses the client certificate --cert-file=${tls.certFile} (it must be signed by the CA the API trusts, its --tls-client-ca-file)`;
      }
      return undefined;
  }
}

/** `10s`, `1.5s`, `500ms`, `1m30s`: how durations appear in messages (lib/duration.ts). */
export function formatSeconds(ms: number): string {
  return formatDuration(ms);
}
