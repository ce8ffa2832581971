/**
 * Admission of a unit file's contents by role (issue 30): which keys need which capability
 * of the policy (auth-policy.ts, CAPABILITIES), and that the scheduling keys name only units
 * the caller has rights on. Called by the handlers that put a file in force: submit, update,
 * start (of a stored file), a scale up, and plan (which refuses what a submit would).
 *
 * Without a policy (rights undefined) everything passes, as before policies had capabilities.
 *
 * @example
 *   checkUnitContents(rights, definition, 'submit');
 *   // ApiError permission-denied: "token:webteam (roles webteam) may not submit
 *   //   web@vol.service: [Container] Volume=/:/host (line 4) needs capability host-paths; ..."
 */
import {
  excerpt,
  FLEET_ALIASES,
  type ExecCommand,
  type UnitDefinition,
  type UnitEntry,
  unitSecrets,
} from '../../unit/index.js';
import type { Capability, Verb } from './auth-policy.js';
import { ApiError } from './errors.js';
import type { Rights } from './rights.js';

/** How many keys a refusal names (the rest are counted): a refusal stays one readable line. */
const MAX_NAMED = 4;

/** One key of a unit file that needs a capability. */
export interface CapabilityNeed {
  readonly capability: Capability;
  /** `[Container] Volume=/:/host`, or what is missing: `[Container] Image= (none)`. */
  readonly key: string;
  /** 1-based; 0 when the need comes from a key the file does not have. */
  readonly line: number;
}

/** Whether a User= value (as the agent switches to it) is root; '' is the agent's, root. */
export function isRootUser(user: string): boolean {
  const name = user.split(':')[0] ?? '';
  return name === '' || name === 'root' || /^0+$/.test(name);
}

/**
 * The Linux capabilities a unit may name without `added-capabilities`: Docker's default set,
 * which Docker gives every container and which reach no further than the container's own
 * files, processes and network endpoints. Anything else (CAP_SYS_ADMIN mounts, CAP_NET_ADMIN
 * the machine's network, CAP_SYS_PTRACE other processes...) is the host's to grant.
 */
const UNPRIVILEGED_CAPABILITIES: ReadonlySet<string> = new Set([
  'CAP_AUDIT_WRITE',
  'CAP_CHOWN',
  'CAP_DAC_OVERRIDE',
  'CAP_FOWNER',
  'CAP_FSETID',
  'CAP_KILL',
  'CAP_MKNOD',
  'CAP_NET_BIND_SERVICE',
  'CAP_NET_RAW',
  'CAP_SETFCAP',
  'CAP_SETGID',
  'CAP_SETPCAP',
  'CAP_SETUID',
  'CAP_SYS_CHROOT',
]);

/**
 * Every capability `def` needs, in file order of its keys. Running as root: an image unit
 * without `User=` in `[Service]` or `[Container]` runs as the image's user, which admission
 * cannot know before a pull and which is root for most images, so it counts as root; a unit
 * without an image runs as the agent (root) unless `[Service] User=` says otherwise.
 */
export function capabilityNeeds(def: UnitDefinition): CapabilityNeed[] {
  const needs: CapabilityNeed[] = [];
  const { service, container } = def;
  const serviceLine = sectionLine(def, 'Service');
  if (container === undefined) {
    needs.push({
      capability: 'host-process',
      key: '[Container] Image= (none: the unit runs host programs)',
      line: 0,
    });
  }
  if (container !== undefined) {
    for (const v of container.volumes) {
      if (v.named) continue;
      const e = entry(def, 'Container', 'Volume', (x) => x.value.startsWith(`${v.source}:`));
      needs.push({
        capability: 'host-paths',
        key: `[Container] Volume=${excerpt(e?.value ?? `${v.source}:${v.destination}`, 80)}`,
        line: e?.line ?? 0,
      });
    }
  }
  if (service.rootDirectory !== '') {
    const e = entry(def, 'Service', 'RootDirectory');
    needs.push(serviceNeed('host-paths', 'RootDirectory', service.rootDirectory, e));
  }
  for (const f of service.environmentFiles) {
    const e = entry(def, 'Service', 'EnvironmentFile', (x) => x.value.includes(f.path));
    needs.push(serviceNeed('host-paths', 'EnvironmentFile', f.path, e));
  }
  if (container === undefined && service.rootDirectory === '' && service.workingDirectory !== '') {
    const e = entry(def, 'Service', 'WorkingDirectory');
    needs.push(serviceNeed('host-paths', 'WorkingDirectory', service.workingDirectory, e));
  }
  const user = service.user !== '' ? service.user : (container?.user ?? '');
  if (isRootUser(user)) {
    const e =
      entry(def, 'Service', 'User') ??
      (container === undefined ? undefined : entry(def, 'Container', 'User'));
    needs.push({
      capability: 'root',
      key:
        e === undefined ? '[Service] User= (unset: runs as root)' : `User=${excerpt(e.value, 40)}`,
      line: e?.line ?? serviceLine,
    });
  }
  for (const [key, caps] of [
    ['AmbientCapabilities', service.ambientCapabilities],
    ['CapabilityBoundingSet', service.capabilityBoundingSet],
  ] as const) {
    const beyond = (caps ?? []).filter((c) => !UNPRIVILEGED_CAPABILITIES.has(c));
    if (beyond.length === 0) continue;
    const e = entry(def, 'Service', key);
    const more = beyond.length > 3 ? ` (and ${beyond.length - 3} more)` : '';
    needs.push(serviceNeed('added-capabilities', key, beyond.slice(0, 3).join(' ') + more, e));
  }
  const execs: [string, readonly ExecCommand[]][] = [
    ['ExecStartPre', service.execStartPre],
    ['ExecStart', service.execStart],
    ['ExecStartPost', service.execStartPost],
    ['ExecStop', service.execStop],
    ['ExecStopPost', service.execStopPost],
  ];
  for (const [key, cmds] of execs) {
    for (const c of cmds) {
      if (!c.privileged) continue;
      needs.push({
        capability: 'privileged-exec',
        key: `[Service] ${key}=+${excerpt(c.path, 60)}`,
        line: c.line,
      });
    }
  }
  return needs;
}

/**
 * Throws PERMISSION_DENIED, writing nothing, when the caller lacks a capability `def` needs or
 * a scheduling key names units outside its rights. `action` is the verb the refusal says the
 * caller may not do (`submit`, `start`, `scale`, `plan`, `update`).
 */
export function checkUnitContents(
  rights: Rights | undefined,
  def: UnitDefinition,
  action: string,
): void {
  if (rights === undefined) return;
  const name = def.name.name;
  const missing = capabilityNeeds(def).filter((n) => !rights.holds(n.capability, name));
  if (missing.length > 0) {
    const caps = [...new Set(missing.map((m) => m.capability))];
    const shown = missing
      .slice(0, MAX_NAMED)
      .map((m) => `${m.key}${at(m.line)} needs capability ${m.capability}`);
    const more = missing.length > MAX_NAMED ? ` (and ${missing.length - MAX_NAMED} more)` : '';
    throw new ApiError(
      'permission-denied',
      `${rights.who} may not ${action} ${name}: ${shown.join('; ')}${more}; ask an admin to grant ${caps.join(', ')} on ${name} in the auth policy ("capabilities" of a grant), or drop the key`,
    );
  }
  checkSchedulingKeys(rights, def, action);
  // A unit mounts what it names: naming another team's secret would hand it over.
  const foreign = unitSecrets(def).find((s) => !rights.holdsSecret(s));
  if (foreign !== undefined) {
    throw new ApiError(
      'permission-denied',
      `${rights.who} may not ${action} ${name}: Secret=${foreign} names a secret no role of it holds; ask an admin to add it to a grant's "secrets" in the auth policy`,
    );
  }
}

/**
 * `Replaces=` and `Conflicts=` decide where other units may run, so what they name needs
 * `start-stop`; `MachineOf=` only places this unit but tells whether a unit exists, so it
 * needs `read`. A glob passes only when every name it can match is within a grant.
 */
function checkSchedulingKeys(rights: Rights, def: UnitDefinition, action: string): void {
  const keys: [string, Verb, readonly string[]][] = [
    ['Replaces', 'start-stop', def.fleet.replaces],
    ['Conflicts', 'start-stop', def.fleet.conflicts],
    ['MachineOf', 'read', def.fleet.machineOf],
  ];
  for (const [key, verb, values] of keys) {
    for (const v of values) {
      if (v === def.name.name || rights.may(verb, v)) continue;
      const e = fleetEntry(def, key);
      throw new ApiError(
        'permission-denied',
        `${rights.who} may not ${action} ${def.name.name}: [X-Fleet] ${key}=${excerpt(v, 80)}${at(e?.line ?? 0)} may name units outside its rights (it needs ${verb} on every unit it can match); name only units the role grants ${verb} on`,
      );
    }
  }
}

function at(line: number): string {
  return line > 0 ? ` (line ${line})` : '';
}

function serviceNeed(
  capability: Capability,
  key: string,
  value: string,
  e: UnitEntry | undefined,
): CapabilityNeed {
  return { capability, key: `[Service] ${key}=${excerpt(value, 80)}`, line: e?.line ?? 0 };
}

function sectionLine(def: UnitDefinition, section: string): number {
  return def.syntax.sections.find((s) => s.name === section)?.line ?? 0;
}

/** The last entry of `key` in `section` that `pick` accepts (the last one wins in systemd). */
function entry(
  def: UnitDefinition,
  section: string,
  key: string,
  pick: (e: UnitEntry) => boolean = () => true,
): UnitEntry | undefined {
  let found: UnitEntry | undefined;
  for (const s of def.syntax.sections) {
    if (s.name !== section) continue;
    for (const e of s.entries) if (e.key === key && e.value !== '' && pick(e)) found = e;
  }
  return found;
}

function fleetEntry(def: UnitDefinition, key: string): UnitEntry | undefined {
  for (const s of def.syntax.sections) {
    if (s.name !== 'X-Fleet') continue;
    const e = s.entries.find((x) => (FLEET_ALIASES.get(x.key) ?? x.key) === key);
    if (e !== undefined) return e;
  }
  return undefined;
}
