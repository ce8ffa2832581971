/**
 * How a failed TLS handshake reads, from the client's side. The classification knows only
 * Node's and OpenSSL's wording, nothing of etcd or gRPC services, so the store (towards
 * etcd), the API's relay to agents and flotctl all read failures through it.
 */

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
