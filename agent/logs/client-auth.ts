/**
 * Who may read logs from an agent: the schedulers, proven by a signature of the shared secret
 * (daemon/agent-token.ts) or by a client certificate whose name is on the allow-list (mutual
 * TLS: the CA alone only says the certificate is genuine, not that it is a scheduler's). With
 * both configured, either proof is enough. Health stays open: it says ready or not, nothing
 * about any unit.
 */
import { status, type ServerWritableStream } from '@grpc/grpc-js';
import { AGENT_AUTH_HEADER, verifyLogsRequest } from '../../daemon/agent-token.js';
import type { LogLine, TailRequest } from '../../proto/flotilla/v1/logs.js';

/** What the Logs service accepts as a scheduler's proof. */
export interface LogsClientAuth {
  /** The shared secret (`--logs-token-file`); absent: signatures are not accepted. */
  readonly token?: Buffer;
  /**
   * Names a client certificate must carry (its CN, or a DNS or IP SAN), with mutual TLS
   * (`--tls-client-names`); absent: no certificate is proof enough on its own.
   */
  readonly clientNames?: readonly string[];
}

/** The names a peer certificate carries: its CN and its DNS and IP SANs. */
export function certificateNames(cert: {
  subject?: Record<string, unknown>;
  subjectaltname?: string;
}): string[] {
  const cn = cert.subject?.['CN'];
  const names = typeof cn === 'string' ? [cn] : Array.isArray(cn) ? cn.map(String) : [];
  for (const part of (cert.subjectaltname ?? '').split(',')) {
    const m = /^\s*(DNS|IP Address):(.+)$/.exec(part);
    if (m?.[2] !== undefined) names.push(m[2].trim());
  }
  return names;
}

/** Why `call` may not read `unit`'s log, as a gRPC status, or undefined when it may. */
export function refusal(
  call: ServerWritableStream<TailRequest, LogLine>,
  unit: string,
  auth: LogsClientAuth,
  nowMs: number,
): { code: status; details: string } | undefined {
  const allowed = auth.clientNames;
  if (allowed !== undefined && allowed.length > 0) {
    const cert = call.getAuthContext()?.sslPeerCertificate;
    const names = cert === undefined ? [] : certificateNames(cert);
    if (names.some((n) => allowed.includes(n))) return undefined;
    if (auth.token === undefined) {
      const who =
        names.length === 0
          ? 'no client certificate'
          : `a certificate for ${names.slice(0, 4).join(', ')}`;
      return {
        code: status.PERMISSION_DENIED,
        details: `the client presented ${who}; only ${allowed.slice(0, 8).join(', ')} (--tls-client-names) may read logs here`,
      };
    }
  }
  if (auth.token === undefined) return undefined;
  const header = call.metadata.get(AGENT_AUTH_HEADER)[0];
  const why = verifyLogsRequest(
    auth.token,
    unit,
    typeof header === 'string' ? header : undefined,
    nowMs,
  );
  return why === undefined ? undefined : { code: status.UNAUTHENTICATED, details: why };
}
