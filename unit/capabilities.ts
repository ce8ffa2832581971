/**
 * `AmbientCapabilities=`, `CapabilityBoundingSet=` and `NoNewPrivileges=`, spelled as systemd
 * spells them. A container gets no capability the unit does not name (Flotilla's default is
 * stricter than systemd's, whose root services keep every capability): the ambient set is
 * what the unit's processes hold, the bounding set what they could ever gain (default: the
 * ambient set). Names are checked against Linux's list, so a typo fails at submit with its
 * line instead of silently granting nothing.
 */
import { UnitError } from './errors.js';
import { excerpt } from './excerpt.js';

/** Every Linux capability (capability.h, Linux 6.x), in the kernel's order. */
export const CAPABILITIES: readonly string[] = [
  'CAP_CHOWN',
  'CAP_DAC_OVERRIDE',
  'CAP_DAC_READ_SEARCH',
  'CAP_FOWNER',
  'CAP_FSETID',
  'CAP_KILL',
  'CAP_SETGID',
  'CAP_SETUID',
  'CAP_SETPCAP',
  'CAP_LINUX_IMMUTABLE',
  'CAP_NET_BIND_SERVICE',
  'CAP_NET_BROADCAST',
  'CAP_NET_ADMIN',
  'CAP_NET_RAW',
  'CAP_IPC_LOCK',
  'CAP_IPC_OWNER',
  'CAP_SYS_MODULE',
  'CAP_SYS_RAWIO',
  'CAP_SYS_CHROOT',
  'CAP_SYS_PTRACE',
  'CAP_SYS_PACCT',
  'CAP_SYS_ADMIN',
  'CAP_SYS_BOOT',
  'CAP_SYS_NICE',
  'CAP_SYS_RESOURCE',
  'CAP_SYS_TIME',
  'CAP_SYS_TTY_CONFIG',
  'CAP_MKNOD',
  'CAP_LEASE',
  'CAP_AUDIT_WRITE',
  'CAP_AUDIT_CONTROL',
  'CAP_SETFCAP',
  'CAP_MAC_OVERRIDE',
  'CAP_MAC_ADMIN',
  'CAP_SYSLOG',
  'CAP_WAKE_ALARM',
  'CAP_BLOCK_SUSPEND',
  'CAP_AUDIT_READ',
  'CAP_PERFMON',
  'CAP_BPF',
  'CAP_CHECKPOINT_RESTORE',
];

const KNOWN: ReadonlySet<string> = new Set(CAPABILITIES);

/** The capability keys' parse state: sets in the making, with the line that last changed each. */
export interface CapabilityState {
  ambient: Set<string>;
  ambientLine: number;
  /** Undefined until `CapabilityBoundingSet=` is given: then the ambient set bounds. */
  bounding: Set<string> | undefined;
  noNewPrivileges: boolean | undefined;
}

/** A fresh state: no capabilities, NoNewPrivileges unset (containers default it on). */
export function initialCapabilities(): CapabilityState {
  return { ambient: new Set(), ambientLine: 0, bounding: undefined, noNewPrivileges: undefined };
}

/**
 * One assignment's names: space-separated, `CAP_` names in any case, optionally the whole
 * list prefixed with `~` (all capabilities but these). Throws `invalid-value` naming the
 * first unknown name.
 */
export function parseCapabilityList(
  key: string,
  value: string,
  line: number,
): { invert: boolean; names: string[] } {
  const invert = value.startsWith('~');
  const names = (invert ? value.slice(1) : value).split(/\s+/).filter((w) => w !== '');
  const upper = names.map((n) => n.toUpperCase());
  const unknown = upper.find((n) => !KNOWN.has(n));
  if (unknown !== undefined) {
    throw new UnitError(
      'invalid-value',
      `${key}=${excerpt(value)}: ${excerpt(unknown)} is not a Linux capability; use names such as CAP_NET_BIND_SERVICE (see capabilities(7))`,
      { line },
    );
  }
  return { invert, names: upper };
}

function without(base: Iterable<string>, names: readonly string[]): Set<string> {
  const out = new Set(base);
  for (const n of names) out.delete(n);
  return out;
}

/** `AmbientCapabilities=`: lines accumulate; `~` keeps all but the listed ones. */
export function applyAmbient(s: CapabilityState, value: string, line: number, key: string): void {
  const { invert, names } = parseCapabilityList(key, value, line);
  s.ambient = invert
    ? without(s.ambient.size > 0 ? s.ambient : CAPABILITIES, names)
    : new Set([...s.ambient, ...names]);
  s.ambientLine = line;
}

/** `CapabilityBoundingSet=`: lines merge by union, `~` lines remove (systemd's OR and AND). */
export function applyBounding(s: CapabilityState, value: string, line: number, key: string): void {
  const { invert, names } = parseCapabilityList(key, value, line);
  s.bounding = invert
    ? without(s.bounding ?? CAPABILITIES, names)
    : new Set([...(s.bounding ?? []), ...names]);
}

/** The kernel's order, so a unit's sets read (and compare) the same however they were written. */
function ordered(set: ReadonlySet<string>): string[] {
  return CAPABILITIES.filter((c) => set.has(c));
}

/**
 * The finished sets, or an `invalid-combination` error for ambient capabilities the bounding
 * set drops (the kernel would refuse to raise them: the unit would fail at every start).
 */
export function finishCapabilities(
  s: CapabilityState,
  errors: UnitError[],
): {
  ambientCapabilities?: readonly string[];
  capabilityBoundingSet?: readonly string[];
  noNewPrivileges?: boolean;
} {
  const outside = ordered(s.ambient).filter((c) => s.bounding !== undefined && !s.bounding.has(c));
  if (outside.length > 0) {
    errors.push(
      new UnitError(
        'invalid-combination',
        `AmbientCapabilities= names ${outside.join(' ')}, which CapabilityBoundingSet= leaves out: add ${outside.length === 1 ? 'it' : 'them'} to CapabilityBoundingSet= or drop ${outside.length === 1 ? 'it' : 'them'}`,
        { line: s.ambientLine },
      ),
    );
  }
  return {
    ...(s.ambient.size > 0 ? { ambientCapabilities: ordered(s.ambient) } : {}),
    ...(s.bounding !== undefined ? { capabilityBoundingSet: ordered(s.bounding) } : {}),
    ...(s.noNewPrivileges !== undefined ? { noNewPrivileges: s.noNewPrivileges } : {}),
  };
}
