/**
 * TLS towards etcd: the PEM material a store is opened with, etcd3's form of it, and what a
 * failed handshake with etcd tells the operator to do.
 */
import { rootCertificates } from 'node:tls';
import type { IOptions } from 'etcd3';
import { tlsFailure } from '../lib/tls-failure.js';

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
