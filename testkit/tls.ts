/**
 * A throwaway PKI for TLS tests, made with the `openssl` binary: a CA, and certificates it
 * signs for 127.0.0.1 and localhost (both as IP/DNS SANs and the server's CN), usable as
 * server and as client certificates (extended key usage serverAuth and clientAuth, as
 * Flotilla's docs ask of a scheduler, which is both). EC P-256 keys: fast to make.
 *
 * @example
 *   const pki = await testPki(t); // removed at the test's teardown
 *   startApiServer({ ..., tls: { cert: pki.read(pki.server.certFile), key: ... } });
 *   flotctl(['--ca-file', pki.caFile, ...]);
 */
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { ExecutionContext, TestFn } from 'ava';
import { quietIpServernameWarning } from '../daemon/tls.js';

const run = promisify(execFile);

/** A certificate and its key, as files. */
export interface CertFiles {
  readonly certFile: string;
  readonly keyFile: string;
}

/** A CA and two certificates it signed, in a temp dir. */
export interface TestPki {
  readonly dir: string;
  /** The CA's certificate (PEM): what clients and servers trust. */
  readonly caFile: string;
  /** CN 127.0.0.1; SANs IP:127.0.0.1, DNS:localhost. */
  readonly server: CertFiles;
  /** CN flotilla-test-client; same SANs, so it can serve too. */
  readonly client: CertFiles;
  /** A file's content, as the store and the servers take PEM. */
  read(file: string): Buffer;
  /** Issues another certificate, e.g. `issue('viewer', '/CN=viewer/O=acme')`. */
  issue(file: string, subject: string): Promise<CertFiles>;
  /** Deletes the directory. */
  remove(): Promise<void>;
}

const CONFIG = `[req]
distinguished_name = dn
prompt = no
[dn]
CN = unused
[ca_ext]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[leaf_ext]
basicConstraints = CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth, clientAuth
subjectAltName = IP:127.0.0.1, DNS:localhost
authorityKeyIdentifier = keyid
`;

const EC_KEY = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];

/** Makes a CA (named `name`) and a server and a client certificate in a fresh temp dir. */
export async function makePki(name = 'flotilla-test-ca'): Promise<TestPki> {
  quietIpServernameWarning(); // TLS tests dial 127.0.0.1, as the daemons and flotctl do
  const dir = await mkdtemp(join(tmpdir(), 'flotilla-pki-'));
  const at = (file: string): string => join(dir, file);
  try {
    await writeFile(at('openssl.cnf'), CONFIG);
    const cnf = ['-config', at('openssl.cnf')];
    await openssl(
      ['req', '-x509', ...cnf, '-extensions', 'ca_ext', ...EC_KEY].concat([
        '-keyout',
        at('ca.key'),
        '-out',
        at('ca.crt'),
        '-days',
        '2',
        '-subj',
        `/CN=${name}`,
      ]),
    );
    let serial = 1;
    const leaf = async (file: string, subject: string): Promise<CertFiles> => {
      const files = { certFile: at(`${file}.crt`), keyFile: at(`${file}.key`) };
      await openssl(
        ['req', '-new', ...cnf, ...EC_KEY, '-subj', subject].concat([
          '-keyout',
          files.keyFile,
          '-out',
          at(`${file}.csr`),
        ]),
      );
      await openssl(
        ['x509', '-req', '-in', at(`${file}.csr`), '-CA', at('ca.crt')]
          .concat(['-CAkey', at('ca.key'), '-set_serial', String(serial++), '-days', '2'])
          .concat([
            '-extfile',
            at('openssl.cnf'),
            '-extensions',
            'leaf_ext',
            '-out',
            files.certFile,
          ]),
      );
      return files;
    };
    const server = await leaf('server', '/CN=127.0.0.1');
    const client = await leaf('client', '/CN=flotilla-test-client');
    return {
      dir,
      caFile: at('ca.crt'),
      server,
      client,
      read: (file) => readFileSync(file),
      issue: leaf,
      remove: () => rm(dir, { recursive: true, force: true }),
    };
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
}

/** PEM contents of a client's TLS material: the CA, and a certificate with its key. */
export interface ClientTlsPem {
  readonly ca: Buffer;
  readonly cert: Buffer;
  readonly key: Buffer;
}

/** The PKI's CA and its client certificate (default) or another of its certificates. */
export function clientTls(pki: TestPki, files: CertFiles = pki.client): ClientTlsPem {
  return { ca: pki.read(pki.caFile), cert: pki.read(files.certFile), key: pki.read(files.keyFile) };
}

/** A PKI for one test, removed at its teardown. */
export async function testPki(t: ExecutionContext, name?: string): Promise<TestPki> {
  const pki = await makePki(name);
  t.teardown(() => pki.remove());
  return pki;
}

/** A PKI for the calling test file: made before its first test, removed after its last. */
export function pkiForFile(test: TestFn, name?: string): () => TestPki {
  let pki: TestPki | undefined;
  test.before(async () => {
    pki = await makePki(name);
  });
  test.after.always(async () => {
    await pki?.remove();
  });
  return () => {
    if (pki === undefined) throw new Error('PKI not made yet');
    return pki;
  };
}

async function openssl(args: readonly string[]): Promise<void> {
  try {
    await run('openssl', [...args], { timeout: 30_000 });
  } catch (err) {
    const stderr = (err as { stderr?: unknown }).stderr;
    throw new Error(`openssl ${args[0] ?? ''} failed: ${String(stderr ?? err)}`);
  }
}
