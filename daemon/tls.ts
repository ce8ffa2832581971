/**
 * TLS for Flotilla's gRPC services (the scheduler's API, the agents' Logs service) and their
 * clients (flotctl, the API's relay to agents): PEM material read once at start, checked
 * before anything listens or dials, and turned into grpc-js credentials in one place.
 *
 * @example
 *   const cert = readPem('/etc/flotilla/api.pem', 'certificate'); // throws TlsFileError
 *   server.bindAsync(listen, serverCredentials({ cert, key, clientCa }), ...);
 */
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { credentials, ServerCredentials, type ChannelCredentials } from '@grpc/grpc-js';

/** A TLS server's material, PEM-encoded. */
export interface ServerTls {
  /** The server's certificate, followed by any intermediates. */
  readonly cert: Buffer;
  readonly key: Buffer;
  /** Given: clients must present a certificate signed by this CA (mutual TLS). */
  readonly clientCa?: Buffer;
}

/** A TLS client's material, PEM-encoded. */
export interface ClientTls {
  /** The CA the server's certificate must chain to. Default: the public roots. */
  readonly ca?: Buffer;
  /** A client certificate with its key, for servers that require one; both or neither. */
  readonly cert?: Buffer;
  readonly key?: Buffer;
}

/** Plaintext without `tls`; with it, TLS, and mutual TLS when it has a client CA. */
export function serverCredentials(tls: ServerTls | undefined): ServerCredentials {
  if (tls === undefined) return ServerCredentials.createInsecure();
  const pair = { cert_chain: tls.cert, private_key: tls.key };
  return ServerCredentials.createSsl(tls.clientCa ?? null, [pair], tls.clientCa !== undefined);
}

/** How a server's TLS reads in its start-up log line. */
export function tlsMode(tls: ServerTls | undefined): 'off' | 'on' | 'mutual' {
  return tls === undefined ? 'off' : tls.clientCa === undefined ? 'on' : 'mutual';
}

/** Plaintext without `tls`; with it, TLS verified against `tls.ca` (else the public roots). */
export function channelCredentials(tls: ClientTls | undefined): ChannelCredentials {
  if (tls === undefined) return credentials.createInsecure();
  return credentials.createSsl(tls.ca ?? null, tls.key ?? null, tls.cert ?? null);
}

/** A TLS file that cannot be used; the message says why, for a caller to prefix `--flag=path: `. */
export class TlsFileError extends Error {
  override readonly name = 'TlsFileError';
}

/** What a PEM file must hold: certificates (a CA bundle or a chain) or one private key. */
export type PemKind = 'certificate' | 'key';

/**
 * Reads a PEM file and checks that it holds what it should. Throws TlsFileError: cannot read
 * it, not a PEM certificate, not an unencrypted private key.
 */
export function readPem(
  path: string,
  kind: PemKind,
  readFile: (path: string) => string | Buffer = readFileSync,
): Buffer {
  let pem: Buffer;
  try {
    const content = readFile(path);
    pem = typeof content === 'string' ? Buffer.from(content) : content;
  } catch (err) {
    const why = err instanceof Error ? err.message : String(err);
    throw new TlsFileError(`cannot read it (${why})`);
  }
  try {
    if (kind === 'certificate') new X509Certificate(pem);
    else createPrivateKey(pem);
  } catch (err) {
    const why = err instanceof Error ? err.message : String(err);
    const what = kind === 'certificate' ? 'a PEM certificate' : 'an unencrypted PEM private key';
    throw new TlsFileError(`not ${what} (${why})`);
  }
  return pem;
}

/** Whether `key` is the private key of the first certificate in `cert`. */
export function isKeyOf(cert: Buffer, key: Buffer): boolean {
  return new X509Certificate(cert).checkPrivateKey(createPrivateKey(key));
}

let quiet = false;

/**
 * Drops Node's DEP0123 warning ("Setting the TLS ServerName to an IP address is not permitted
 * by RFC 6066"), emitted the first time a TLS connection dials an IP address, as grpc-js does
 * for every `10.0.0.1:4700`-style target. The certificate is still checked against the
 * address (its IP SANs), so the warning tells an operator nothing; printed, it would break
 * flotctl's one-line errors and the daemons' JSON log lines. Every other warning still shows.
 */
export function quietIpServernameWarning(): void {
  if (quiet) return;
  quiet = true;
  const original = process.emitWarning;
  const filtered = function (this: NodeJS.Process, warning: string | Error, ...rest: unknown[]) {
    // emitWarning(warning, type, code) or emitWarning(warning, { type, code }).
    const [typeOrOptions, code] = rest;
    const options =
      typeOrOptions !== null && typeof typeOrOptions === 'object' ? typeOrOptions : {};
    if (code === 'DEP0123' || ('code' in options && options.code === 'DEP0123')) return;
    Reflect.apply(original, this, [warning, ...rest]);
  };
  process.emitWarning = filtered as typeof process.emitWarning;
}
