/**
 * The user namespace of runc containers (`--userns-remap`, issue 30), as Docker's
 * `userns-remap` and Podman do it on runc 1.1 (which has no idmapped mounts): container uids
 * and gids 0..65535 are host ids FIRST..FIRST+65535, so uid 0 in a container is an
 * unprivileged uid on the host. Everything a container's root must own on the host (a
 * default rootfs, an image's layers and upper directory, named volumes, secret files) is
 * made owned by the mapped ids instead.
 *
 * `auto` (the default) takes the `flotilla` user's subordinate ranges from `/etc/subuid` and
 * `/etc/subgid` (as Docker takes `dockremap`'s), else the fixed range 100000:65536 when no
 * other user's subordinate range and no account or group id overlaps it; it is off when the
 * kernel allows no user namespaces or no range is free, with the reason logged.
 */
import { lstat, readFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import type { ServiceOptions } from '../../unit/model.js';
import { RuntimeError } from './errors.js';

/** Container ids mapped: 0..65535, what images and Docker's remap assume. */
export const MAPPED_IDS = 65536;
/** The range `auto` takes without a `flotilla` subordinate entry. */
export const DEFAULT_RANGE = { first: 100_000, count: MAPPED_IDS } as const;
/** The account whose /etc/subuid and /etc/subgid entries `auto` uses. */
export const SUBID_USER = 'flotilla';
/** Host ids are 32-bit and (uid_t)-1 is reserved. */
const HOST_ID_LIMIT = 2 ** 32 - 1;

/** Container id 0 is host `uid`/`gid`; each maps {@link MAPPED_IDS} ids. */
export interface IdMap {
  readonly uid: number;
  readonly gid: number;
  readonly size: number;
}

/** `--userns-remap`: detect, never, or this range for both uids and gids. */
export type UsernsSetting = 'auto' | 'off' | { readonly first: number; readonly count: number };

/** Parses `auto`, `off` or `FIRST:COUNT`; throws a message for the flag otherwise. */
export function parseUsernsRemap(text: string): UsernsSetting {
  if (text === 'auto' || text === 'off') return text;
  const m = /^(\d{1,10}):(\d{1,10})$/.exec(text);
  const first = Number(m?.[1]);
  const count = Number(m?.[2]);
  if (m === null || first < 1 || count < MAPPED_IDS || first + MAPPED_IDS > HOST_ID_LIMIT) {
    throw new Error(
      `--userns-remap=${text}: expected auto, off or FIRST:COUNT with FIRST >= 1 and COUNT >= ${MAPPED_IDS} (e.g. 100000:65536, a range no host user has)`,
    );
  }
  return { first, count };
}

/** What {@link resolveUserns} settled on, and why (for the agent's log). */
export interface UsernsChoice {
  readonly map?: IdMap;
  readonly reason: string;
}

interface SubRange {
  readonly owner: string;
  readonly first: number;
  readonly count: number;
}

function subRanges(text: string): SubRange[] {
  return text
    .split('\n')
    .map((l) => l.trim().split(':'))
    .filter((f) => f.length === 3 && /^\d+$/.test(f[1] ?? '') && /^\d+$/.test(f[2] ?? ''))
    .map((f) => ({ owner: f[0] ?? '', first: Number(f[1]), count: Number(f[2]) }));
}

function ids(text: string): number[] {
  return text
    .split('\n')
    .map((l) => Number(l.split(':')[2]))
    .filter((n) => Number.isInteger(n));
}

/** Files auto reads; tests point these elsewhere. */
export interface UsernsHostFiles {
  readonly maxUserNamespaces: string;
  readonly subuid: string;
  readonly subgid: string;
  readonly passwd: string;
  readonly group: string;
}

const HOST_FILES: UsernsHostFiles = {
  maxUserNamespaces: '/proc/sys/user/max_user_namespaces',
  subuid: '/etc/subuid',
  subgid: '/etc/subgid',
  passwd: '/etc/passwd',
  group: '/etc/group',
};

async function readSmall(path: string): Promise<string | undefined> {
  const text = await readFile(path, 'utf8').catch(() => undefined);
  return text?.slice(0, 1 << 20);
}

/** The mapping `setting` means on this host (see the file comment for `auto`). */
export async function resolveUserns(
  setting: UsernsSetting,
  files: UsernsHostFiles = HOST_FILES,
): Promise<UsernsChoice> {
  if (setting === 'off') return { reason: '--userns-remap=off' };
  const max = Number((await readSmall(files.maxUserNamespaces))?.trim() ?? '0');
  if (!(max > 0)) {
    const why = `the kernel allows no user namespaces (${files.maxUserNamespaces} is ${max || 'missing'})`;
    if (setting === 'auto') return { reason: `${why}: containers run without one` };
    throw new RuntimeError('unsupported', `--userns-remap: ${why}; use --userns-remap=off`);
  }
  if (setting !== 'auto') {
    const map = { uid: setting.first, gid: setting.first, size: MAPPED_IDS };
    return { map, reason: `--userns-remap=${setting.first}:${setting.count}` };
  }
  const subuid = subRanges((await readSmall(files.subuid)) ?? '');
  const subgid = subRanges((await readSmall(files.subgid)) ?? '');
  const own = (r: SubRange): boolean => r.owner === SUBID_USER && r.count >= MAPPED_IDS;
  const u = subuid.find(own);
  const g = subgid.find(own);
  if (u !== undefined && g !== undefined) {
    return {
      map: { uid: u.first, gid: g.first, size: MAPPED_IDS },
      reason: `the ${SUBID_USER} entries of ${files.subuid} and ${files.subgid}`,
    };
  }
  const { first, count } = DEFAULT_RANGE;
  const overlaps = (a: number, n: number): boolean => a < first + count && first < a + n;
  const taken = [...subuid, ...subgid].find((r) => overlaps(r.first, r.count));
  const accounts = [
    ...ids((await readSmall(files.passwd)) ?? ''),
    ...ids((await readSmall(files.group)) ?? ''),
  ];
  const used = accounts.find((id) => overlaps(id, 1));
  if (taken !== undefined || used !== undefined) {
    const what =
      taken !== undefined
        ? `${taken.owner}'s subordinate range ${taken.first}:${taken.count}`
        : `the host id ${used ?? 0}`;
    return {
      reason: `the default range ${first}:${count} overlaps ${what}: containers run without a user namespace; give the ${SUBID_USER} user a range of its own (usermod --add-subuids A-B --add-subgids A-B ${SUBID_USER}) or --userns-remap=FIRST:COUNT`,
    };
  }
  return {
    map: { uid: first, gid: first, size: MAPPED_IDS },
    reason: `the default range ${first}:${count} (no ${SUBID_USER} entry in ${files.subuid})`,
  };
}

/**
 * Why the unit must run in the host's user namespace although remapping is on, or undefined
 * when it runs remapped: what it was granted on the host's own files (a host-path `Volume=`,
 * `RootDirectory=`, both need the `host-paths` capability) would be unowned in a namespace,
 * as with Docker's `--userns=host`. Named volumes live in `volumesDir` and are remapped.
 */
export function hostUsernsReason(service: ServiceOptions, volumesDir: string): string | undefined {
  if (service.rootDirectory !== '' && service.image === undefined) {
    return `RootDirectory=${service.rootDirectory} is a host path`;
  }
  const inside = `${volumesDir}/`;
  const host = (service.binds ?? []).find((b) => !b.source.startsWith(inside));
  return host === undefined ? undefined : `Volume=${host.source} is a host path`;
}

/** The host id of container id `id`; ids beyond the map become the mapped nobody (65534). */
export function hostId(id: number, first: number, size: number): number {
  return first + (id >= 0 && id < size ? id : 65534);
}

/** Throws `bad-user` when the unit's uid or gid has no host id in `map`. */
export function checkMapped(
  user: { readonly uid: number; readonly gid: number },
  map: IdMap,
): void {
  const bad = [user.uid, user.gid].find((id) => id < 0 || id >= map.size);
  if (bad !== undefined) {
    throw new RuntimeError(
      'bad-user',
      `id ${bad} of the unit's user is outside the container's user namespace (0..${map.size - 1}): use a User= below ${map.size}, or run the agent with --userns-remap=off`,
    );
  }
}

/** Capabilities whose object, on the host's network, is owned by the host's user namespace. */
const HOST_NETWORK_CAPS = ['CAP_NET_BIND_SERVICE', 'CAP_NET_ADMIN', 'CAP_NET_RAW'];

/**
 * A note for the unit's log when it runs in a user namespace on the host's network and holds
 * a network capability, which acts only on namespaces its own user namespace owns: binding a
 * port below 1024 fails with EACCES although the capability is there. Undefined otherwise.
 */
export function lostCapabilities(
  service: ServiceOptions,
  map: IdMap | undefined,
): string | undefined {
  if (map === undefined || service.privateNetwork) return undefined;
  const held = new Set([
    ...(service.ambientCapabilities ?? []),
    ...(service.capabilityBoundingSet ?? []),
  ]);
  const lost = HOST_NETWORK_CAPS.filter((c) => held.has(c));
  if (lost.length === 0) return undefined;
  return `${lost.join(', ')} ha${lost.length > 1 ? 've' : 's'} no effect on the host's network from the container's user namespace (--userns-remap): ports below 1024 cannot be bound (EACCES); listen on 1024 or above, or ask the operator for --userns-remap=off`;
}

/**
 * The first parent of `stateDir` closed to other users (no `o+x`), or undefined. runc binds a
 * container's rootfs as the container's root, a host uid that must traverse every directory
 * above it; the state directory itself the agent opens (runc.ts), its parents are the
 * operator's (a home directory such as /root is 0700).
 */
export async function closedParent(stateDir: string): Promise<string | undefined> {
  for (let d = dirname(resolve(stateDir)); d !== dirname(d); d = dirname(d)) {
    const st = await lstat(d).catch(() => undefined);
    if (st !== undefined && (st.mode & 0o001) === 0) return d;
  }
  return undefined;
}

/** Why a user namespace cannot be used with `stateDir`, or undefined when it can. */
export async function stateDirProblem(stateDir: string): Promise<string | undefined> {
  const closed = await closedParent(stateDir);
  return closed === undefined
    ? undefined
    : `the state directory's parent ${closed} is closed to other users, so a container in a user namespace cannot reach its root: chmod o+x ${closed}, move --state-dir, or run the agent with --userns-remap=off`;
}

/** The name of the layer directory for `map` (unshifted layers: `layers`). */
export function layersDirName(map: IdMap | undefined): string {
  return map === undefined ? 'layers' : `layers-${map.uid}-${map.gid}-${map.size}`;
}
