/**
 * flotctl's side of TLS: the files of `--ca-file`, `--cert-file` and `--key-file`, read into
 * channel credentials when it connects. (What a failed handshake says is in errors.ts.)
 */
import type { ChannelCredentials } from '@grpc/grpc-js';
import { CliError } from './errors.js';
import {
  channelCredentials,
  isKeyOf,
  quietIpServernameWarning,
  readPem,
  TlsFileError,
  type PemKind,
} from '../daemon/tls.js';
import type { ClientTlsFiles } from './verb.js';

/** Reads the TLS files; a file that cannot be used is a CliError `file` naming flag and path. */
export function clientCredentials(files: ClientTlsFiles): ChannelCredentials {
  // flotctl dials 127.0.0.1 with TLS too: Node's warning would break the one-line errors (tls.ts).
  // Here, not in main.ts, so that only a verb that connects loads gRPC and TLS.
  quietIpServernameWarning();
  const ca = pem('ca-file', files.caFile, 'certificate');
  const cert = pem('cert-file', files.certFile, 'certificate');
  const key = pem('key-file', files.keyFile, 'key');
  if (cert !== undefined && key !== undefined && !isKeyOf(cert, key)) {
    throw new CliError(
      'file',
      `--key-file=${files.keyFile ?? ''} is not the key of --cert-file=${files.certFile ?? ''}`,
    );
  }
  return channelCredentials({
    ...(ca === undefined ? {} : { ca }),
    ...(cert === undefined || key === undefined ? {} : { cert, key }),
  });
}

function pem(flag: string, path: string | undefined, kind: PemKind): Buffer | undefined {
  if (path === undefined) return undefined;
  try {
    return readPem(path, kind);
  } catch (err) {
    if (err instanceof TlsFileError)
      throw new CliError('file', `--${flag}=${path}: ${err.message}`);
    throw err;
  }
}
