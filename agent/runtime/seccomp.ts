/**
 * The seccomp profile every container gets, as data. Docker's default profile in spirit, but
 * written as a deny list (everything else allowed) so a syscall newer than this file keeps
 * working: what it denies are the calls that reach past the container, which no unit needs
 * and which a kernel bug most often hides behind. Denied calls fail with EPERM, as a missing
 * capability would, except `clone3` (ENOSYS, so the C library falls back to `clone`, whose
 * namespace flags are checkable and checked here). runc applies it right before the unit's
 * program starts; hooks and health checks (`runc exec`) run under the same profile.
 */

/** An OCI seccomp rule (runtime spec `linux.seccomp.syscalls[]`). */
export interface OciSeccompRule {
  names: string[];
  action: 'SCMP_ACT_ERRNO' | 'SCMP_ACT_ALLOW';
  errnoRet?: number;
  args?: { index: number; value: number; valueTwo: number; op: 'SCMP_CMP_MASKED_EQ' }[];
}

/** The OCI `linux.seccomp` object. */
export interface OciSeccomp {
  defaultAction: 'SCMP_ACT_ALLOW';
  architectures: string[];
  syscalls: OciSeccompRule[];
}

const EPERM = 1;
const ENOSYS = 38;

/**
 * Denied syscalls by family. A family with a capability is allowed when the unit is granted
 * that capability (as Docker's profile does: `CAP_SYS_ADMIN` allows mounts, `CAP_SYS_PTRACE`
 * ptrace); the others are denied whatever the unit asks for.
 */
export const DENIED_SYSCALLS: readonly { readonly unless?: string; readonly names: string[] }[] = [
  // Mounts and namespaces: the container's view is runc's to make, once; a new user namespace
  // would give back every capability inside it.
  {
    unless: 'CAP_SYS_ADMIN',
    names: ['mount', 'umount', 'umount2', 'pivot_root', 'mount_setattr', 'unshare', 'setns'],
  },
  {
    unless: 'CAP_SYS_ADMIN',
    names: ['fsopen', 'fsconfig', 'fsmount', 'fspick', 'move_mount', 'open_tree', 'quotactl'],
  },
  { unless: 'CAP_SYS_ADMIN', names: ['quotactl_fd', 'lookup_dcookie', 'nfsservctl', 'vhangup'] },
  { unless: 'CAP_SYS_CHROOT', names: ['chroot'] },
  // The kernel itself: modules, kexec, reboot, clocks, accounting, its log.
  {
    unless: 'CAP_SYS_MODULE',
    names: ['init_module', 'finit_module', 'delete_module', 'create_module', 'query_module'],
  },
  { unless: 'CAP_SYS_BOOT', names: ['kexec_load', 'kexec_file_load', 'reboot'] },
  {
    unless: 'CAP_SYS_TIME',
    names: ['settimeofday', 'stime', 'clock_settime', 'clock_settime64', 'clock_adjtime'],
  },
  { unless: 'CAP_SYS_TIME', names: ['clock_adjtime64', 'adjtimex'] },
  { unless: 'CAP_SYS_PACCT', names: ['acct'] },
  { unless: 'CAP_SYSLOG', names: ['syslog'] },
  { names: ['swapon', 'swapoff', 'get_kernel_syms', '_sysctl', 'sysfs', 'uselib', 'ustat'] },
  // Other processes' memory: ptrace, cross-process reads and writes, kcmp.
  {
    unless: 'CAP_SYS_PTRACE',
    names: ['ptrace', 'process_vm_readv', 'process_vm_writev', 'kcmp', 'pidfd_getfd'],
  },
  // The kernel keyring is not namespaced: keys would leak between units.
  { names: ['keyctl', 'add_key', 'request_key'] },
  // eBPF, perf and userfaultfd: the usual doors to kernel exploits.
  { unless: 'CAP_BPF', names: ['bpf'] },
  { unless: 'CAP_PERFMON', names: ['perf_event_open'] },
  { names: ['userfaultfd'] },
  // io_uring carries operations past this very filter.
  { names: ['io_uring_setup', 'io_uring_enter', 'io_uring_register'] },
  // Raw I/O ports, file handles (which escape bind mounts), NUMA placement, old personalities.
  { unless: 'CAP_SYS_RAWIO', names: ['iopl', 'ioperm'] },
  { unless: 'CAP_DAC_READ_SEARCH', names: ['open_by_handle_at'] },
  { unless: 'CAP_SYS_NICE', names: ['mbind', 'set_mempolicy', 'move_pages', 'migrate_pages'] },
  { names: ['vm86', 'vm86old', 'name_to_handle_at'] },
];

/** CLONE_NEW* flags: clone() with any of them would make a namespace, as unshare() would. */
const CLONE_NAMESPACE_FLAGS = [
  0x00020000, // CLONE_NEWNS
  0x02000000, // CLONE_NEWCGROUP
  0x04000000, // CLONE_NEWUTS
  0x08000000, // CLONE_NEWIPC
  0x10000000, // CLONE_NEWUSER
  0x20000000, // CLONE_NEWPID
  0x40000000, // CLONE_NEWNET
];

/**
 * The native architecture with its 32-bit ABIs: the native one alone would let a 32-bit binary
 * call everything. Only this host's family: every architecture more is a filter more that
 * runc compiles at each start.
 */
const ARCHITECTURES: readonly string[] =
  process.arch === 'arm64'
    ? ['SCMP_ARCH_AARCH64', 'SCMP_ARCH_ARM']
    : ['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86', 'SCMP_ARCH_X32'];

/**
 * The profile of a container whose processes may hold `capabilities` (its bounding set): the
 * families above, minus those a granted capability allows.
 */
export function seccompProfile(capabilities: readonly string[]): OciSeccomp {
  const granted = new Set(capabilities);
  const denied = DENIED_SYSCALLS.filter((f) => f.unless === undefined || !granted.has(f.unless));
  const rules: OciSeccompRule[] = [
    { names: denied.flatMap((f) => f.names), action: 'SCMP_ACT_ERRNO', errnoRet: EPERM },
    { names: ['clone3'], action: 'SCMP_ACT_ERRNO', errnoRet: ENOSYS },
  ];
  if (!granted.has('CAP_SYS_ADMIN')) {
    // One rule per flag: conditions in one rule are ANDed, separate rules ORed. clone's flags
    // are its first argument on x86 and arm (s390 swaps them; not a target).
    for (const flag of CLONE_NAMESPACE_FLAGS) {
      rules.push({
        names: ['clone'],
        action: 'SCMP_ACT_ERRNO',
        errnoRet: EPERM,
        args: [{ index: 0, value: flag, valueTwo: flag, op: 'SCMP_CMP_MASKED_EQ' }],
      });
    }
  }
  return { defaultAction: 'SCMP_ACT_ALLOW', architectures: [...ARCHITECTURES], syscalls: rules };
}
