/**
 * The OCI runtime config (config.json) of a unit's container, built from its [Service]
 * options: pid, mount, ipc and uts namespaces (network only with PrivateNetwork=yes, user with
 * an id map: userns.ts), cgroup
 * v1 limits from MemoryMax/CPUQuota/TasksMax, and a rootfs that is either RootDirectory= or an
 * empty directory with the host's system directories bound read-only. Pure: no I/O.
 */
import type { BindMount, ServiceOptions } from '../../unit/model.js';
import type { CommandSpec } from './driver.js';
import type { EtcBind } from './host-etc.js';
import { seccompProfile, type OciSeccomp } from './seccomp.js';
import type { IdMap } from './userns.js';

/**
 * The host directories a default rootfs shows, read-only; missing ones are skipped. Not /etc:
 * host-etc.ts binds the few files of it a unit needs.
 */
export const HOST_DIRS = ['/usr', '/bin', '/sbin', '/lib', '/lib64'] as const;

/** CPU quota period: 100 ms, systemd's and the kernel's default. */
export const CPU_PERIOD_US = 100_000;

/** A subset of the OCI runtime spec's `process`. */
export interface OciProcess {
  terminal: boolean;
  user: { uid: number; gid: number; additionalGids?: number[] };
  args: string[];
  env: string[];
  cwd: string;
  capabilities: {
    bounding: string[];
    effective: string[];
    permitted: string[];
    inheritable: string[];
    ambient: string[];
  };
  noNewPrivileges: boolean;
}

/** One OCI mount. */
export interface OciMount {
  destination: string;
  type: string;
  source: string;
  options?: string[];
}

/** One range of a user namespace's id map. */
export interface OciIdMapping {
  containerID: number;
  hostID: number;
  size: number;
}

/** A subset of the OCI runtime spec's config.json. */
export interface OciConfig {
  ociVersion: string;
  process: OciProcess;
  root: { path: string; readonly: boolean };
  mounts: OciMount[];
  linux: {
    cgroupsPath: string;
    resources: {
      devices: { allow: boolean; access: string }[];
      memory?: { limit: number };
      cpu?: { quota: number; period: number };
      pids?: { limit: number };
    };
    namespaces: { type: string }[];
    uidMappings?: OciIdMapping[];
    gidMappings?: OciIdMapping[];
    maskedPaths: string[];
    readonlyPaths: string[];
    seccomp: OciSeccomp;
  };
}

/**
 * Docker's default capability set: what a `+` command (systemd's "full privileges") holds,
 * since in a container it still runs inside the container, as root.
 */
export const PRIVILEGED_CAPS = [
  'CAP_CHOWN',
  'CAP_DAC_OVERRIDE',
  'CAP_FSETID',
  'CAP_FOWNER',
  'CAP_MKNOD',
  'CAP_NET_RAW',
  'CAP_SETGID',
  'CAP_SETUID',
  'CAP_SETFCAP',
  'CAP_SETPCAP',
  'CAP_NET_BIND_SERVICE',
  'CAP_SYS_CHROOT',
  'CAP_KILL',
  'CAP_AUDIT_WRITE',
];

/** The capabilities a container's processes may ever hold: its bounding set. */
export function boundingSet(service: ServiceOptions): string[] {
  return [...(service.capabilityBoundingSet ?? service.ambientCapabilities ?? [])];
}

/**
 * The container process for `cmd`: exactly the unit's `AmbientCapabilities=` (root included:
 * uid 0 in a container is no reason to hold anything), bounded by `CapabilityBoundingSet=`,
 * and NoNewPrivileges unless the unit says `NoNewPrivileges=no`. A `+` command gets Docker's
 * default set on top, without NoNewPrivileges.
 */
export function ociProcess(cmd: CommandSpec, service: ServiceOptions): OciProcess {
  const ambient = [...(service.ambientCapabilities ?? [])];
  const bounding = boundingSet(service);
  const privileged = cmd.privileged === true;
  const held = privileged ? [...new Set([...PRIVILEGED_CAPS, ...ambient])] : ambient;
  return {
    terminal: false,
    user: {
      uid: cmd.user.uid,
      gid: cmd.user.gid,
      ...(cmd.user.groups.length > 0 ? { additionalGids: [...cmd.user.groups] } : {}),
    },
    args: [cmd.path, ...cmd.args],
    env: Object.entries(cmd.env).map(([k, v]) => `${k}=${v}`),
    cwd: cmd.cwd,
    capabilities: {
      bounding: privileged ? [...new Set([...PRIVILEGED_CAPS, ...bounding])] : bounding,
      effective: [...held],
      permitted: [...held],
      // Inheritable and ambient too, so a non-root User= keeps them across its exec.
      inheritable: [...held],
      ambient: [...held],
    },
    noNewPrivileges: !privileged && service.noNewPrivileges !== false,
  };
}

/** What the rootfs of a bundle is made of. */
export interface RootfsPlan {
  /** Absolute path of the rootfs directory. */
  readonly path: string;
  /** False for RootDirectory= (the unit owns it, as with systemd); true for the empty default. */
  readonly readonly: boolean;
  /** Host directories to bind read-only at the same path (real directories only). */
  readonly binds: readonly string[];
  /** Host directory bound as the unit's private /tmp, shared by all its commands. */
  readonly tmp: string;
  /** An image unit's volumes (`[Container] Volume=`), bound where it asked. */
  readonly volumes?: readonly BindMount[];
  /** Files and directories of the default rootfs's /etc, bound read-only (host-etc.ts). */
  readonly etc?: readonly EtcBind[];
  /** The unit's secrets tmpfs on the host (secret-files.ts), shown at {@link SECRETS_MOUNT}. */
  readonly secrets?: string;
  /** The user namespace's id map (userns.ts); absent: the host's user namespace. */
  readonly idMap?: IdMap;
}

/** Where a container sees its secrets, as Docker and Podman put them. */
export const SECRETS_MOUNT = '/run/secrets';

/**
 * The unit's secrets directory (a tmpfs on the host, files 0400 of the unit's user), bound
 * read-only: the unit can read its secrets, never change them or run or open devices there.
 */
export function secretsMount(hostDir: string): OciMount {
  return {
    destination: SECRETS_MOUNT,
    type: 'bind',
    source: hostDir,
    options: ['bind', 'ro', 'nosuid', 'nodev', 'noexec'],
  };
}

/** The cgroup limits of a unit: only what it asked for. */
export function ociResources(service: ServiceOptions): OciConfig['linux']['resources'] {
  const { cpuMillicores, memoryBytes, tasks } = service.resources;
  return {
    devices: [{ allow: false, access: 'rwm' }],
    ...(memoryBytes > 0 ? { memory: { limit: memoryBytes } } : {}),
    ...(cpuMillicores > 0
      ? {
          cpu: { quota: Math.round((cpuMillicores * CPU_PERIOD_US) / 1000), period: CPU_PERIOD_US },
        }
      : {}),
    ...(tasks > 0 ? { pids: { limit: tasks } } : {}),
  };
}

/**
 * /sys: a fresh sysfs, read-only as a whole (a bind would leave the host's cgroup hierarchies
 * under it writable). In a user namespace on the host's network the kernel refuses a new
 * sysfs (it belongs to the network namespace's owner), and a plain bind fails with EINVAL
 * (its submounts are locked): the host's is bound recursively, read-only, as runc's rootless
 * spec does. Its submounts keep their flags, but their files are owned by host ids the
 * namespace does not map, so the container's root may not write them either.
 */
function sysMount(userns: boolean): OciMount {
  return userns
    ? {
        destination: '/sys',
        type: 'bind',
        source: '/sys',
        options: ['rbind', 'nosuid', 'noexec', 'nodev', 'ro'],
      }
    : {
        destination: '/sys',
        type: 'sysfs',
        source: 'sysfs',
        options: ['nosuid', 'noexec', 'nodev', 'ro'],
      };
}

function baseMounts(tmp: string, userns: boolean): OciMount[] {
  return [
    { destination: '/proc', type: 'proc', source: 'proc' },
    {
      destination: '/dev',
      type: 'tmpfs',
      source: 'tmpfs',
      options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'],
    },
    {
      destination: '/dev/pts',
      type: 'devpts',
      source: 'devpts',
      options: ['nosuid', 'noexec', 'newinstance', 'ptmxmode=0666', 'mode=0620', 'gid=5'],
    },
    {
      destination: '/dev/shm',
      type: 'tmpfs',
      source: 'shm',
      options: ['nosuid', 'noexec', 'nodev', 'mode=1777', 'size=65536k'],
    },
    {
      destination: '/dev/mqueue',
      type: 'mqueue',
      source: 'mqueue',
      options: ['nosuid', 'noexec', 'nodev'],
    },
    sysMount(userns),
    {
      destination: '/sys/fs/cgroup',
      type: 'cgroup',
      source: 'cgroup',
      options: ['nosuid', 'noexec', 'nodev', 'relatime', 'ro'],
    },
    { destination: '/tmp', type: 'bind', source: tmp, options: ['bind', 'rw', 'nosuid', 'nodev'] },
  ];
}

/** The whole config.json of a container running `cmd` for a unit with `service`. */
export function ociConfig(
  service: ServiceOptions,
  cmd: CommandSpec,
  rootfs: RootfsPlan,
  cgroupsPath: string,
): OciConfig {
  const map = rootfs.idMap;
  const namespaces = [
    'pid',
    'mount',
    'ipc',
    'uts',
    ...(service.privateNetwork ? ['network'] : []),
    ...(map !== undefined ? ['user'] : []),
  ];
  const binds: OciMount[] = rootfs.binds.map((dir) => ({
    destination: dir,
    type: 'bind',
    source: dir,
    // Not rbind: a recursive bind would keep the host's submounts writable under `ro`.
    options: ['bind', 'ro'],
  }));
  const volumes: OciMount[] = (rootfs.volumes ?? []).map((v) => ({
    destination: v.destination,
    type: 'bind',
    source: v.source,
    options: ['rbind', v.readOnly ? 'ro' : 'rw'],
  }));
  const etc: OciMount[] = (rootfs.etc ?? []).map((b) => ({
    destination: b.destination,
    type: 'bind',
    source: b.source,
    options: ['bind', 'ro', 'nosuid', 'nodev'],
  }));
  return {
    ociVersion: '1.0.2',
    process: ociProcess(cmd, service),
    root: { path: rootfs.path, readonly: rootfs.readonly },
    mounts: [
      ...baseMounts(rootfs.tmp, rootfs.idMap !== undefined),
      ...binds,
      ...etc,
      ...volumes,
      ...(rootfs.secrets !== undefined ? [secretsMount(rootfs.secrets)] : []),
    ],
    linux: {
      cgroupsPath,
      resources: ociResources(service),
      namespaces: namespaces.map((type) => ({ type })),
      ...(map !== undefined
        ? {
            uidMappings: [{ containerID: 0, hostID: map.uid, size: map.size }],
            gidMappings: [{ containerID: 0, hostID: map.gid, size: map.size }],
          }
        : {}),
      maskedPaths: [
        '/proc/acpi',
        '/proc/asound',
        '/proc/kcore',
        '/proc/keys',
        '/proc/latency_stats',
        '/proc/timer_list',
        '/proc/timer_stats',
        '/proc/sched_debug',
        '/sys/firmware',
        '/proc/scsi',
      ],
      readonlyPaths: ['/proc/bus', '/proc/fs', '/proc/irq', '/proc/sys', '/proc/sysrq-trigger'],
      // What a `+` command may hold counts too: the profile follows the widest set.
      seccomp: seccompProfile(
        cmd.privileged === true
          ? [...PRIVILEGED_CAPS, ...boundingSet(service)]
          : boundingSet(service),
      ),
    },
  };
}
