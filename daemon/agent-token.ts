/**
 * How a scheduler proves itself to an agent's Logs service without TLS: both hold one shared
 * secret (`--agent-token-file` on the schedulers, `--logs-token-file` on the agents, a file
 * of at least 32 characters, 0600), and every request carries, in gRPC metadata, an HMAC of
 * the time and the unit it asks for. The secret itself never crosses the wire, so a unit that
 * sniffs the machine's network learns only a signature that reads the same unit's log for
 * {@link TOKEN_MAX_AGE_MS}. Compared in constant time.
 *
 * @example
 *   metadata.set(AGENT_AUTH_HEADER, signLogsRequest(secret, 'db.service', Date.now()));
 *   verifyLogsRequest(secret, 'db.service', header, Date.now()); // undefined: accepted
 */
import { createHmac, timingSafeEqual } from 'node:crypto';

/** The gRPC metadata key of the signature. */
export const AGENT_AUTH_HEADER = 'x-flotilla-agent-auth';
/** A signature is accepted this long after (and before: clocks differ) its time. */
export const TOKEN_MAX_AGE_MS = 60_000;
/** Shorter secrets are refused at start: they could be guessed. */
export const MIN_SECRET_LENGTH = 32;
/** A header longer than this is not read at all. */
const MAX_HEADER = 256;

function mac(secret: Buffer, unit: string, atMs: number): Buffer {
  return createHmac('sha256', secret).update(`flotilla-logs-v1\n${atMs}\n${unit}`).digest();
}

/** The header value for a request about `unit` made at `nowMs`: `v1.<ms>.<hex hmac>`. */
export function signLogsRequest(secret: Buffer, unit: string, nowMs: number): string {
  const at = Math.floor(nowMs);
  return `v1.${at}.${mac(secret, unit, at).toString('hex')}`;
}

/**
 * Why `header` does not authorize a request about `unit` at `nowMs`, or undefined when it
 * does. The reasons say what a client should fix, never anything about the secret.
 */
export function verifyLogsRequest(
  secret: Buffer,
  unit: string,
  header: string | undefined,
  nowMs: number,
): string | undefined {
  if (header === undefined || header === '') {
    return `no ${AGENT_AUTH_HEADER} credential: only the schedulers (with --agent-token-file) may read logs here`;
  }
  const match =
    header.length <= MAX_HEADER ? /^v1\.(\d{1,16})\.([0-9a-f]{64})$/.exec(header) : null;
  if (match === null) return `the ${AGENT_AUTH_HEADER} credential is malformed`;
  const at = Number(match[1]);
  if (Math.abs(nowMs - at) > TOKEN_MAX_AGE_MS) {
    return `the ${AGENT_AUTH_HEADER} credential is stale or from the future: check the clocks of scheduler and agent (at most ${TOKEN_MAX_AGE_MS / 1000} s apart)`;
  }
  const given = Buffer.from(match[2] ?? '', 'hex');
  const expected = mac(secret, unit, at);
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
    return `the ${AGENT_AUTH_HEADER} credential does not match: the scheduler's --agent-token-file and the agent's --logs-token-file must hold the same secret`;
  }
  return undefined;
}

/**
 * The secret a token file holds (surrounding white space dropped). Throws a plain Error whose
 * message a caller prefixes with `--flag=path: `.
 */
export function parseTokenFile(content: string | Buffer): Buffer {
  const text = content.toString().trim();
  if (text.length < MIN_SECRET_LENGTH) {
    throw new Error(
      `the secret must be at least ${MIN_SECRET_LENGTH} characters (e.g. \`openssl rand -hex 32 > FILE; chmod 600 FILE\`)`,
    );
  }
  return Buffer.from(text);
}
