/**
 * Authorization of API calls under a {@link Policy}: who calls (a bearer token's name, else
 * the client certificate's subject, else `anonymous`), which verbs the method needs on which
 * units (the table {@link METHOD_RULES}), and whether a role of the caller grants them.
 *
 * The table is the one place a method is mapped: a method it does not name (a new API method
 * nobody mapped yet) needs `admin`, so it is denied to everyone else, never silently allowed.
 *
 * @example
 *   const auth = new Authorizer(policy);
 *   const caller = auth.identify(call.metadata, call.getAuthContext());
 *   auth.authorize(caller, 'Units.SetDesiredState', request); // throws ApiError permission-denied
 */
import type { Metadata, ServerUnaryCall } from '@grpc/grpc-js';
import type { WatchRequest } from '../../proto/flotilla/v1/events.js';
import type { TailRequest } from '../../proto/flotilla/v1/logs.js';
import type { ListEndpointsRequest } from '../../proto/flotilla/v1/services.js';
import type {
  DestroyUnitsRequest,
  GetRolloutRequest,
  GetUnitRequest,
  ListUnitsRequest,
  PlanRequest,
  RollbackRequest,
  ScaleRequest,
  SummarizeInstancesRequest,
  SetDesiredStateRequest,
  SubmitUnitsRequest,
  UpdateUnitRequest,
} from '../../proto/flotilla/v1/units.js';
import { excerpt } from '../../unit/index.js';
import { findToken, SUBJECT_FIELDS, type Policy, type Subject, type Verb } from './auth-policy.js';
import { ApiError } from './errors.js';
import { covers, PolicyRights, type Rights } from './rights.js';
import type { Visible } from './interceptors.js';

/** What a TLS connection says of its peer (grpc-js does not export the type). */
export type AuthContext = ReturnType<ServerUnaryCall<unknown, unknown>['getAuthContext']>;

/** What a method needs: verbs (by request), on which units (absent: not about units), and
 * whether it writes (writes are audited). */
export interface MethodRule {
  readonly write: boolean;
  /**
   * A listing or watch: asked for more units than the caller may read, it is narrowed to those
   * it may (the handler filters by {@link Visible}) instead of refused.
   */
  readonly narrows?: boolean;
  verbs(request: unknown): readonly Verb[];
  /** Unit names, or globs of them (a listing's filter; '' or absent: every unit). */
  units?(request: unknown): readonly string[];
}

function rule<Req>(
  write: boolean,
  verbs: readonly Verb[] | ((r: Req) => readonly Verb[]),
  units?: (r: Req) => readonly string[],
  narrows = false,
): MethodRule {
  return {
    write,
    ...(narrows ? { narrows } : {}),
    verbs: (r) => (typeof verbs === 'function' ? verbs(r as Req) : verbs),
    ...(units === undefined ? {} : { units: (r: unknown) => units(r as Req) }),
  };
}

/** `''` (no filter) asks for every unit, so it needs a grant on `*`. */
const pattern = (glob: string): string[] => [glob === '' ? '*' : glob];

/**
 * Every API method and what it needs. New methods go here; one left out needs `admin`.
 * SubmitUnits with a desired state also starts or stops, so it needs both verbs.
 */
export const METHOD_RULES: Readonly<Record<string, MethodRule>> = {
  'Units.SubmitUnits': rule<SubmitUnitsRequest>(
    true,
    (r) => (r.desiredState === '' ? ['submit'] : ['submit', 'start-stop']),
    (r) => r.files.map((f) => f.name),
  ),
  'Units.SetDesiredState': rule<SetDesiredStateRequest>(true, ['start-stop'], (r) => r.names),
  'Units.DestroyUnits': rule<DestroyUnitsRequest>(true, ['destroy'], (r) => r.names),
  // The canonical name, the one scale acts on (`web` is `web@.service`).
  'Units.Scale': rule<ScaleRequest>(true, ['scale'], (r) => [canonicalTemplate(r.template)]),
  // Counting a template's instances reads all of them.
  'Units.SummarizeInstances': rule<SummarizeInstancesRequest>(false, ['read'], (r) => [
    instancesGlob(canonicalTemplate(r.template)),
  ]),
  'Units.GetUnit': rule<GetUnitRequest>(false, ['read'], (r) => [r.name]),
  'Units.ListUnits': rule<ListUnitsRequest>(false, ['read'], (r) => pattern(r.nameGlob), true),
  'Units.Plan': rule<PlanRequest>(false, ['read'], (r) => [
    ...r.files.map((f) => f.name),
    ...r.names,
  ]),
  'Units.UpdateUnit': rule<UpdateUnitRequest>(true, ['submit', 'start-stop'], (r) =>
    r.file === undefined ? [] : [r.file.name],
  ),
  'Units.Rollback': rule<RollbackRequest>(true, ['submit', 'start-stop'], (r) => [r.name]),
  'Units.GetRollout': rule<GetRolloutRequest>(false, ['read'], (r) => [r.name]),
  'Machines.ListMachines': rule(false, ['read']),
  'Machines.DrainMachine': rule(true, ['drain']),
  'Machines.UndrainMachine': rule(true, ['drain']),
  'Machines.SetMachineMetadata': rule(true, ['admin']),
  'Machines.ResumeRescheduling': rule(true, ['admin']),
  'Machines.ListSchedulers': rule(false, ['read']),
  'Events.Watch': rule<WatchRequest>(false, ['read'], (r) => pattern(r.unitGlob), true),
  'Events.WatchBatches': rule<WatchRequest>(false, ['read'], (r) => pattern(r.unitGlob), true),
  'Logs.Tail': rule<TailRequest>(false, ['read'], (r) => [r.unit]),
  // A service is read through its units: narrowed to the endpoints of units the caller reads.
  'Services.ListServices': rule(false, ['read'], () => ['*'], true),
  'Services.ListEndpoints': rule<ListEndpointsRequest>(
    false,
    ['read'],
    (r) => (r.service === '' && r.unit !== '' ? [r.unit] : ['*']),
    true,
  ),
  // Secrets name no units: the handlers judge the secret's name (a grant's "secrets").
  'Secrets.CreateSecret': rule(true, []),
  'Secrets.ListSecrets': rule(false, []),
  'Secrets.DeleteSecret': rule(true, []),
  // Reflection tells the API's methods: any role that reads may ask, anonymous callers not.
  'Reflection.ServerReflectionInfo': rule(false, ['read']),
};

/**
 * The template a scale names, as scale acts on it: `web` and `web@` are `web@.service`.
 * Authorization and the handler both use it, so what is authorized is what is acted on.
 */
export function canonicalTemplate(raw: string): string {
  if (raw !== '' && !raw.includes('@') && !raw.includes('.')) return `${raw}@.service`;
  if (raw.endsWith('@')) return `${raw}.service`;
  return raw;
}

/** The glob of a template's instances: `web@.service` -> `web@*.service`. */
function instancesGlob(template: string): string {
  const at = template.indexOf('@');
  return at < 0 ? template : `${template.slice(0, at + 1)}*${template.slice(at + 1)}`;
}

/** Unmapped methods: admin only, and audited as writes (they may be). */
const UNMAPPED: MethodRule = rule(true, ['admin']);

/** The rule of `method` (`Service.Method`). */
export function ruleOf(method: string): MethodRule {
  return METHOD_RULES[method] ?? UNMAPPED;
}

/** Who calls: how logs, errors and the audit name them, and the roles the policy gives them. */
export interface Caller {
  /** `token:ci-team-a`, `CN=viewer,O=acme`, or `anonymous`; never a secret. */
  readonly identity: string;
  readonly roles: readonly string[];
}

/** The caller of a call that no policy judges. */
export function unjudgedCaller(auth: AuthContext | undefined): Caller {
  const subject = auth?.sslPeerCertificate?.subject;
  return { identity: subject === undefined ? 'anonymous' : subjectName(subject), roles: [] };
}

/** At most this much of an `authorization` header is looked at. */
const MAX_TOKEN_CHARS = 4096;

/** Checks calls against one policy. */
export class Authorizer {
  constructor(private readonly policy: Policy) {}

  /**
   * The caller: a bearer token must be one of the policy's (else UNAUTHENTICATED, which never
   * repeats the token); without one, the client certificate's subject, with the roles of every
   * identity of the policy it matches; without either, `anonymous` with no role.
   */
  identify(metadata: Metadata, auth: AuthContext | undefined): Caller {
    const header = metadata.get('authorization')[0];
    return this.identifyBy(header === undefined ? undefined : String(header), auth);
  }

  /** {@link identify} from an `authorization` header's text (HTTP's, or gRPC's metadata). */
  identifyBy(header: string | undefined, auth: AuthContext | undefined): Caller {
    if (header !== undefined) {
      const text = header;
      const m = /^Bearer (\S+)$/.exec(text.length > MAX_TOKEN_CHARS ? '' : text);
      if (m === null) {
        throw new ApiError('unauthenticated', 'the authorization header is not "Bearer TOKEN"');
      }
      const found = findToken(this.policy, m[1] as string);
      if (found === undefined || found.kind !== 'token') {
        throw new ApiError(
          'unauthenticated',
          "the token is not in the API's policy: check --token or FLOTCTL_TOKEN",
        );
      }
      return { identity: `token:${found.name}`, roles: found.roles };
    }
    const cert = auth?.sslPeerCertificate?.subject;
    if (cert === undefined) return { identity: 'anonymous', roles: [] };
    const subject = subjectOf(cert);
    const roles = new Set<string>();
    for (const id of this.policy.identities) {
      if (id.kind === 'subject' && matches(id.subject, subject)) {
        for (const r of id.roles) roles.add(r);
      }
    }
    return { identity: subjectName(cert), roles: [...roles] };
  }

  /** What `caller` may do, for handlers that judge a request's contents (rights.ts). */
  rights(caller: Caller): Rights {
    const grants = caller.roles.flatMap((name) => this.policy.roles.get(name) ?? []);
    return new PolicyRights(caller.identity, caller.roles, grants);
  }

  /**
   * Throws PERMISSION_DENIED naming the caller, the verb and the first grant missing. Returns
   * the units a narrowed listing or watch may show, or undefined when it shows all it asked.
   */
  authorize(caller: Caller, method: string, request: unknown): Visible | undefined {
    const r = ruleOf(method);
    const grants = caller.roles.flatMap((name) => this.policy.roles.get(name) ?? []);
    const targets = r.units?.(request);
    for (const verb of r.verbs(request)) {
      const allowed = grants.filter((g) => g.verbs.has(verb) || g.verbs.has('admin'));
      if (targets === undefined) {
        if (allowed.length > 0) continue;
        throw denied(caller, method, verb, `no role of it grants ${verb}`);
      }
      const missing = targets.filter((t) => !allowed.some((g) => covers(g, t)));
      if (missing.length === 0) continue;
      if (r.narrows === true && allowed.length > 0) {
        return (name) => allowed.some((g) => g.units.some((glob) => glob.test(name)));
      }
      const first = excerpt(missing[0] as string, 256);
      const more = missing.length > 1 ? ` (and ${missing.length - 1} more)` : '';
      const what = first === '*' ? 'any unit' : first;
      throw denied(caller, method, verb, `no role of it grants ${verb} on ${what}${more}`);
    }
    return undefined;
  }
}

function denied(caller: Caller, method: string, verb: Verb, why: string): ApiError {
  const roles = caller.roles.length === 0 ? 'no roles' : `roles ${caller.roles.join(', ')}`;
  return new ApiError(
    'permission-denied',
    `${caller.identity} (${roles}) may not ${verb} (${method}): ${why}; ask an admin to grant it in the auth policy`,
  );
}

type CertSubject = Readonly<Record<string, string | string[] | undefined>>;

function subjectOf(cert: CertSubject): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const f of SUBJECT_FIELDS) {
    const v = cert[f];
    out[f] = v === undefined ? [] : Array.isArray(v) ? v : [v];
  }
  return out;
}

/** Every field the policy names equals one of the certificate's values for it. */
function matches(want: Subject, have: Record<string, string[]>): boolean {
  return SUBJECT_FIELDS.every((f) => want[f] === undefined || (have[f] ?? []).includes(want[f]));
}

/** `CN=viewer,O=acme,OU=web`, bounded. */
function subjectName(cert: CertSubject): string {
  const parts: string[] = [];
  for (const f of SUBJECT_FIELDS) {
    const v = cert[f];
    for (const one of v === undefined ? [] : Array.isArray(v) ? v : [v]) parts.push(`${f}=${one}`);
  }
  return parts.length === 0 ? 'certificate without CN, O or OU' : excerpt(parts.join(','), 256);
}
