/**
 * TLS towards etcd: the PEM material a store is opened with, etcd3's form of it, and how a
 * failed TLS handshake reads. The classification ({@link tlsFailure}) knows only Node's and
 * OpenSSL's wording, nothing of etcd, so flotctl and the API's relay to agents use it too.
 */
import { rootCertificates } from 'node:tls';
import type { IOptions } from 'etcd3';

/**
 * TLS towards etcd, PEM-encoded: what `https://` endpoints are verified with and, for an etcd
 * run with `--client-cert-auth`, the client certificate presented to it.
 */
export interface StoreTls {
  /** The CA that signed etcd's certificate. Default: the public roots Node trusts. */
  readonly ca?: Buffer;
  /** This client's certificate (chain), with `key`; for etcd's `--client-cert-auth`. */
  readonly cert?: Buffer;
  readonly key?: Buffer;
}

/** etcd3's `credentials` (createSsl's arguments), or undefined for no TLS material. */
export function etcdCredentials(tls: StoreTls | undefined): IOptions['credentials'] {
  if (tls === undefined) return undefined;
  return {
    // etcd3 insists on a root certificate once credentials are given: the public roots.
    rootCertificate: tls.ca ?? Buffer.from(rootCertificates.join('\n')),
    ...(tls.cert === undefined ? {} : { certChain: tls.cert }),
    ...(tls.key === undefined ? {} : { privateKey: tls.key }),
  };
}

/**
 * Why a TLS connection failed, seen from the client:
 * - `untrusted`: the server's certificate does not chain to a CA the client trusts (or expired).
 * - `wrong-name`: the certificate does not name the host or address that was dialled.
 * - `refused`: the server refused the client's certificate, or wanted one and got none.
 * - `not-tls`: the client spoke TLS to a server that does not.
 * - `dropped`: the server closed or reset the connection before gRPC began. Over plaintext
 *   this is what a TLS server does, and a mutual-TLS server refusing a client certificate
 *   may do it after the handshake; it is also what a proxy cutting connections looks like.
 */
export type TlsFailureKind = 'untrusted' | 'wrong-name' | 'refused' | 'not-tls' | 'dropped';

/** A classified failure and the library's own words for it, short. */
export interface TlsFailure {
  readonly kind: TlsFailureKind;
  /** e.g. `unable to verify the first certificate`, `tlsv13 alert certificate required`. */
  readonly reason: string;
}

/** First match wins; each pattern also extracts the reason worth quoting. */
const PATTERNS: ReadonlyArray<readonly [TlsFailureKind, RegExp]> = [
  [
    'wrong-name',
    /(Hostname\/IP does not match certificate's altnames: .*?)\.?(?: Resolution note|$)/m,
  ],
  [
    'untrusted',
    /(unable to verify the first certificate|self[- ]signed certificate(?: in certificate chain)?|unable to get (?:local )?issuer certificate|certificate has expired|certificate is not yet valid)/i,
  ],
  [
    'refused',
    /((?:sslv3|tlsv1[0-3]?) alert (?:certificate required|bad certificate|unknown ca|certificate unknown|certificate expired|certificate revoked|unsupported certificate|access denied))/,
  ],
  ['not-tls', /(wrong version number|packet length too long|http request)/i],
  ['dropped', /(Failed to connect)/],
  // A reset only while connecting: one of an established connection is no TLS matter.
  ['dropped', /No connection established\. Last error: (?:Error: )?(read ECONNRESET)/],
];

/**
 * Classifies a connection error's message (a grpc-js `details`, an Error message), or
 * undefined when it is not about TLS.
 */
export function tlsFailure(message: string): TlsFailure | undefined {
  for (const [kind, pattern] of PATTERNS) {
    const m = pattern.exec(message);
    if (m !== null) return { kind, reason: m[1] ?? m[0] };
  }
  return undefined;
}

/** The sentence a store error carries for a TLS failure towards etcd, or undefined. */
export function etcdTlsProblem(message: string): string | undefined {
  const failure = tlsFailure(message);
  switch (failure?.kind) {
    case 'untrusted':
      return `etcd's certificate is not trusted (${failure.reason}): give the CA that signed it (--etcd-cafile)`;
    case 'wrong-name':
      return `etcd's certificate does not name the endpoint (${failure.reason}): use an address it holds`;
    case 'refused':
      return `etcd refused this client's certificate or wants one (${failure.reason}): give a certificate and key signed by a CA etcd trusts (--etcd-certfile, --etcd-keyfile)`;
    case 'not-tls':
      return `etcd does not speak TLS there (${failure.reason}): use an http:// endpoint`;
    case 'dropped':
      return 'etcd closed the connection at once (as a TLS etcd does to http:// clients)';
    default:
      return undefined;
  }
}
