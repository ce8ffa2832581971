/**
 * What an admitted caller may do, for the handlers that must judge what a request is about
 * beyond its names: the units a unit file's scheduling keys name, the capabilities its keys
 * need (unit-contents.ts), which units a plan or a reason may show. The gate hands a handler
 * Rights only under a policy; without one (undefined) everyone may do everything.
 *
 * @example
 *   const rights = new PolicyRights('token:webteam', ['webteam'], grants);
 *   rights.may('start-stop', 'd*'); // false for a grant on web@* only
 *   rights.holds('root', 'web@1.service');
 */
import type { Capability, Grant, Verb } from './auth-policy.js';

/** The caller's rights under the policy. */
export interface Rights {
  /** How errors name the caller: `token:webteam (roles webteam)`. */
  readonly who: string;
  /**
   * Whether a role grants `verb` (or admin) on `target`: a unit name, or a glob asking only for
   * names a grant matches (see {@link covers}).
   */
  may(verb: Verb, target: string): boolean;
  /** Whether a role grants `capability` (or admin) on unit `name`. */
  holds(capability: Capability, name: string): boolean;
  /** Whether a role's `secrets` (or admin) cover the secret `name`. */
  holdsSecret(name: string): boolean;
}

/** Rights from the grants of a caller's roles. */
export class PolicyRights implements Rights {
  readonly who: string;

  constructor(
    identity: string,
    roles: readonly string[],
    private readonly grants: readonly Grant[],
  ) {
    this.who = `${identity} (${roles.length === 0 ? 'no roles' : `roles ${roles.join(', ')}`})`;
  }

  may(verb: Verb, target: string): boolean {
    return this.grants.some(
      (g) => (g.verbs.has(verb) || g.verbs.has('admin')) && covers(g, target),
    );
  }

  holdsSecret(name: string): boolean {
    return this.grants.some(
      (g) => g.verbs.has('admin') || g.secrets.some((glob) => glob.test(name)),
    );
  }

  holds(capability: Capability, name: string): boolean {
    return this.grants.some(
      (g) =>
        (g.capabilities.has(capability) || g.verbs.has('admin')) &&
        g.units.some((glob) => glob.test(name)),
    );
  }
}

const GLOB_CHARS = /[*?[\]]/;

/**
 * Whether grant `g` covers `target`: a unit name its globs match, or a glob (a listing's
 * filter, a `Replaces=` value) that asks only for names they match: the same glob, `*`, or
 * one that starts with the literal prefix of a grant of the form `prefix*`. Any other glob
 * could match units outside the grant, so it is not covered.
 */
export function covers(g: Grant, target: string): boolean {
  if (!GLOB_CHARS.test(target)) return g.units.some((glob) => glob.test(target));
  return g.units.some(
    (glob) =>
      glob.source === '*' ||
      glob.source === target ||
      (glob.source === `${glob.literalPrefix}*` && target.startsWith(glob.literalPrefix)),
  );
}
