/**
 * The authorization policy (`flotilla scheduler --auth-policy FILE`): who may do what to which
 * units, and which capabilities their unit files may use (unit-contents.ts). A JSON file, read and checked once at start; any problem is a PolicyError naming the
 * file and the JSON path, so the scheduler refuses to start rather than run with half a policy.
 *
 * @example
 *   {
 *     "roles": {
 *       "viewer": [{ "verbs": ["read"], "units": ["*"] }],
 *       "team-a": [{ "verbs": ["read", "submit", "start-stop", "destroy", "scale"], "units": ["team-a-*"] }],
 *       "ops":    [{ "verbs": ["admin"] }],
 *       "builders": [{ "capabilities": ["root"], "units": ["build-*"] }]
 *     },
 *     "identities": [
 *       { "subject": { "CN": "viewer" }, "roles": ["viewer"] },
 *       { "subject": { "O": "ops" }, "roles": ["ops"] },
 *       { "name": "ci-team-a", "tokenSha256": "9f86d0…", "roles": ["team-a"] }
 *     ]
 *   }
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { compileGlob, type Glob } from '../../unit/index.js';

/** What a grant may allow; `admin` allows everything, including methods no verb names. */
export const VERBS = [
  'read',
  'submit',
  'start-stop',
  'destroy',
  'scale',
  'drain',
  'admin',
] as const;
export type Verb = (typeof VERBS)[number];

/**
 * What a unit file may do beyond running an image as a non-root user in its container
 * (unit-contents.ts says which keys need which). A grant holds them on the units its globs
 * match; `admin` holds all of them; without a policy everyone holds all of them.
 * - `host-paths`: host files and directories: a `Volume=` from a host path, `RootDirectory=`,
 *   `EnvironmentFile=` (read by the agent on the host), `WorkingDirectory=` of a unit without
 *   an image.
 * - `root`: running as root: no `User=`, or `User=root`/`0`.
 * - `privileged-exec`: an exec line with the `+` prefix (runs as the agent, outside `User=`).
 * - `host-process`: a unit without `[Container] Image=`, which runs the host's programs.
 * - `added-capabilities`: `AmbientCapabilities=`/`CapabilityBoundingSet=` naming a Linux
 *   capability beyond Docker's default set (CAP_SYS_ADMIN, CAP_NET_ADMIN, CAP_SYS_PTRACE...).
 */
export const CAPABILITIES = [
  'host-paths',
  'root',
  'privileged-exec',
  'host-process',
  'added-capabilities',
] as const;
export type Capability = (typeof CAPABILITIES)[number];

/** Certificate subject fields an identity may match on. */
export const SUBJECT_FIELDS = ['CN', 'O', 'OU'] as const;
export type SubjectField = (typeof SUBJECT_FIELDS)[number];
export type Subject = Partial<Record<SubjectField, string>>;

/** One grant of a role: these verbs and capabilities on units matching any of these globs. */
export interface Grant {
  readonly verbs: ReadonlySet<Verb>;
  readonly capabilities: ReadonlySet<Capability>;
  readonly units: readonly Glob[];
  /**
   * Secrets whose names these globs match: the role may create, replace, delete and list
   * them, and name them in units' `Secret=`. None unless given; `admin` holds every secret.
   */
  readonly secrets: readonly Glob[];
}

/** An identity of the policy: a certificate subject to match, or a token's hash. */
export type PolicyIdentity =
  | { readonly kind: 'subject'; readonly subject: Subject; readonly roles: readonly string[] }
  | {
      readonly kind: 'token';
      readonly name: string;
      readonly hash: Buffer;
      readonly roles: readonly string[];
    };

/** A checked policy. */
export interface Policy {
  readonly roles: ReadonlyMap<string, readonly Grant[]>;
  readonly identities: readonly PolicyIdentity[];
  /** Whether any identity is a token (tokens need TLS or a loopback API). */
  readonly hasTokens: boolean;
}

/** The policy file cannot be used; the message names the file and what to fix. */
export class PolicyError extends Error {
  override readonly name = 'PolicyError';
}

/** The most a policy file may hold: it is read whole at start. */
export const MAX_POLICY_BYTES = 1024 * 1024;

/** The hex SHA-256 of a token, as `tokenSha256` holds it (`printf %s TOKEN | sha256sum`). */
export function hashToken(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}

/** The policy identity whose token is `token`, compared in constant time. */
export function findToken(policy: Policy, token: string): PolicyIdentity | undefined {
  const hash = createHash('sha256').update(token, 'utf8').digest();
  return policy.identities.find((i) => i.kind === 'token' && timingSafeEqual(i.hash, hash));
}

/** Parses and checks the text of a policy file; `file` names it in errors. */
export function parsePolicy(file: string, text: string): Policy {
  if (Buffer.byteLength(text) > MAX_POLICY_BYTES) {
    throw new PolicyError(`${file}: larger than ${MAX_POLICY_BYTES} bytes`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    const why = err instanceof Error ? err.message : String(err);
    throw new PolicyError(`${file}: not valid JSON (${why})`);
  }
  const top = object(file, '', json);
  unknownKeys(file, '', top, ['roles', 'identities']);
  const roles = new Map<string, Grant[]>();
  for (const [name, grants] of Object.entries(object(file, 'roles', top['roles']))) {
    roles.set(
      name,
      array(file, `roles.${name}`, grants).map((g, i) => grant(file, `roles.${name}[${i}]`, g)),
    );
  }
  const identities = array(file, 'identities', top['identities']).map((v, i) =>
    identity(file, `identities[${i}]`, v, roles),
  );
  const names = new Set<string>();
  for (const id of identities) {
    if (id.kind !== 'token') continue;
    if (names.has(id.name)) throw new PolicyError(`${file}: token name "${id.name}" is used twice`);
    names.add(id.name);
  }
  return { roles, identities, hasTokens: names.size > 0 };
}

function grant(file: string, path: string, value: unknown): Grant {
  const g = object(file, path, value);
  unknownKeys(file, path, g, ['verbs', 'capabilities', 'units', 'secrets']);
  const verbs = (g['verbs'] === undefined ? [] : strings(file, `${path}.verbs`, g['verbs'])).map(
    (v) => {
      if (!(VERBS as readonly string[]).includes(v)) {
        throw new PolicyError(
          `${file}: ${path}.verbs: unknown verb "${v}"; use ${VERBS.join(', ')}`,
        );
      }
      return v as Verb;
    },
  );
  const caps = (
    g['capabilities'] === undefined ? [] : strings(file, `${path}.capabilities`, g['capabilities'])
  ).map((c) => {
    if (!(CAPABILITIES as readonly string[]).includes(c)) {
      throw new PolicyError(
        `${file}: ${path}.capabilities: unknown capability "${c}"; use ${CAPABILITIES.join(', ')}`,
      );
    }
    return c as Capability;
  });
  const secrets = g['secrets'] === undefined ? [] : strings(file, `${path}.secrets`, g['secrets']);
  if (verbs.length === 0 && caps.length === 0 && secrets.length === 0) {
    throw new PolicyError(`${file}: ${path}: grants no verb, capability or secret`);
  }
  const globs = g['units'] === undefined ? ['*'] : strings(file, `${path}.units`, g['units']);
  return {
    verbs: new Set(verbs),
    capabilities: new Set(caps),
    units: globs.map((u) => compileGlob(u)),
    secrets: secrets.map((u) => compileGlob(u)),
  };
}

function identity(
  file: string,
  path: string,
  value: unknown,
  roles: ReadonlyMap<string, unknown>,
): PolicyIdentity {
  const o = object(file, path, value);
  unknownKeys(file, path, o, ['subject', 'name', 'tokenSha256', 'roles']);
  const roleNames = strings(file, `${path}.roles`, o['roles']);
  for (const r of roleNames) {
    if (!roles.has(r)) throw new PolicyError(`${file}: ${path}.roles: no role "${r}" in roles`);
  }
  if ((o['subject'] === undefined) === (o['tokenSha256'] === undefined)) {
    throw new PolicyError(`${file}: ${path}: give either "subject" or "tokenSha256"`);
  }
  if (o['subject'] !== undefined) {
    const s = object(file, `${path}.subject`, o['subject']);
    unknownKeys(file, `${path}.subject`, s, SUBJECT_FIELDS);
    const subject: Subject = {};
    for (const f of SUBJECT_FIELDS) {
      if (s[f] === undefined) continue;
      if (typeof s[f] !== 'string' || s[f] === '') {
        throw new PolicyError(`${file}: ${path}.subject.${f}: expected a non-empty string`);
      }
      subject[f] = s[f];
    }
    if (Object.keys(subject).length === 0) {
      throw new PolicyError(`${file}: ${path}.subject: name at least one of CN, O, OU`);
    }
    return { kind: 'subject', subject, roles: roleNames };
  }
  const hash = o['tokenSha256'];
  if (typeof hash !== 'string' || !/^[0-9a-f]{64}$/.test(hash)) {
    throw new PolicyError(
      `${file}: ${path}.tokenSha256: expected 64 lowercase hex digits (printf %s TOKEN | sha256sum)`,
    );
  }
  const name = o['name'];
  if (typeof name !== 'string' || !/^[A-Za-z0-9_.@:-]{1,64}$/.test(name)) {
    throw new PolicyError(
      `${file}: ${path}.name: a token needs a name of 1-64 letters, digits, '_.@:-' (it is what logs and the audit show)`,
    );
  }
  return { kind: 'token', name, hash: Buffer.from(hash, 'hex'), roles: roleNames };
}

function object(file: string, path: string, value: unknown): Record<string, unknown> {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new PolicyError(`${file}: ${path === '' ? 'the file' : path}: expected a JSON object`);
  }
  return value as Record<string, unknown>;
}

function array(file: string, path: string, value: unknown): unknown[] {
  if (!Array.isArray(value)) throw new PolicyError(`${file}: ${path}: expected a JSON array`);
  return value;
}

function strings(file: string, path: string, value: unknown): string[] {
  const list = array(file, path, value);
  if (!list.every((v) => typeof v === 'string' && v !== '')) {
    throw new PolicyError(`${file}: ${path}: expected a list of non-empty strings`);
  }
  return list as string[];
}

function unknownKeys(
  file: string,
  path: string,
  o: Record<string, unknown>,
  known: readonly string[],
): void {
  for (const k of Object.keys(o)) {
    if (!known.includes(k)) {
      throw new PolicyError(
        `${file}: ${path === '' ? '' : `${path}: `}unknown key "${k}"; expected ${known.join(', ')}`,
      );
    }
  }
}
