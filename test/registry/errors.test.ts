/**
 * How skopeo's failures are told apart: each test is a message skopeo (containers/image)
 * prints, framed as it prints it, and the code and words a user then sees.
 */
import test from 'ava';
import { classifySkopeo, type RegistryErrorCode } from '../../registry/errors.js';

const framed = (msg: string) => `time="2026-12-04T23:00:00Z" level=fatal msg="${msg}"\n`;
const classify = (msg: string) => classifySkopeo('127.0.0.1:5000/app:1', framed(msg));

test('a full disk is a full disk, whatever digits the paths in the message hold', (t) => {
  // From a real run: the blob's temporary file name held "403", which once read as HTTP 403.
  const err = classify(
    'writing blob: write /tmp/flotilla-full-x/images/oci/00a3bdd637340378a58a56f645f60ba0/oci-put-blob2205628946: no space left on device',
  );
  t.is(err.code, 'disk-full');
  t.regex(err.message, /disk is full/);
});

test('registry answers are told by their words and status codes', (t) => {
  const cases: [string, RegistryErrorCode][] = [
    ['reading manifest 1 in 127.0.0.1:5000/app: manifest unknown', 'not-found'],
    ['unexpected status code 404 (Not Found)', 'not-found'],
    ['reading manifest 1: unauthorized: authentication required', 'unauthorized'],
    ['requested access to the resource is denied', 'unauthorized'],
    ['unexpected status code 403 (Forbidden)', 'unauthorized'],
    [
      'pinging container registry: dial tcp 127.0.0.1:1: connect: connection refused',
      'unreachable',
    ],
    ['http: server gave HTTP response to HTTPS client', 'unreachable'],
    ['Digest did not match, expected sha256:aa, got sha256:bb', 'invalid-image'],
    ['open /var/lib/x/blob4040401: permission denied', 'failed'],
  ];
  for (const [msg, code] of cases) t.is(classify(msg).code, code, msg);
});
