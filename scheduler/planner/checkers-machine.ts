/**
 * Checkers that look at the machine alone (drained, images, id, metadata) or at its totals
 * (reservations, per-template count). Each is O(1) or O(keys) per machine.
 */
import { formatBytes, type FeasibilityChecker } from './checker.js';

/** A drained machine takes nothing. Reason: `are drained`. */
export const DrainedChecker: FeasibilityChecker = {
  name: 'DrainedChecker',
  byName: false,
  accepts: (_ctx, _u, s) => !s.machine.drained,
  explain: () => 'are drained',
};

/**
 * An image unit (`[Container]`) needs a machine whose runtime driver runs images (runc; the
 * process driver runs plain commands only). Reason: `run no images`.
 */
export const ImagesChecker: FeasibilityChecker = {
  name: 'ImagesChecker',
  byName: false,
  accepts: (_ctx, u, s) => !u.image || s.machine.runsImages === true,
  explain: () => 'run no images',
};

/**
 * MachineID=: the named machine only, by full id or a unique prefix. An ambiguous prefix
 * places nowhere. Reasons: `do not match MachineID=<id>`, and for the machines an ambiguous
 * prefix matches, `match ambiguous MachineID=<prefix>`.
 */
export const MachineIDChecker: FeasibilityChecker = {
  name: 'MachineIDChecker',
  byName: false,
  accepts(ctx, u, s) {
    if (u.machineId === '') return true;
    const targets = ctx.machineIdTargets(u);
    return targets.length === 1 && targets[0] === s.idx;
  },
  explain(ctx, u, s) {
    const targets = ctx.machineIdTargets(u);
    if (targets.length > 1 && targets.includes(s.idx)) {
      return `match ambiguous MachineID=${u.machineId}`;
    }
    return `do not match MachineID=${u.machineId}`;
  },
};

/**
 * MachineMetadata=: every key must match (AND), any listed value of a key will do (OR).
 * Reason, for the first key in the unit's order that fails: `lack region=eu or region=us`.
 */
export const MachineMetadataChecker: FeasibilityChecker = {
  name: 'MachineMetadataChecker',
  byName: false,
  accepts(_ctx, u, s) {
    for (const [key, values] of u.metadata) {
      const have = s.machine.metadata.get(key);
      if (have === undefined || !values.includes(have)) return false;
    }
    return true;
  },
  explain(_ctx, u, s) {
    for (const [key, values] of u.metadata) {
      const have = s.machine.metadata.get(key);
      if (have === undefined || !values.includes(have)) {
        return `lack ${values.map((v) => `${key}=${v}`).join(' or ')}`;
      }
    }
    return 'lack the required metadata';
  },
};

/**
 * CPU and memory: what placed units reserve plus the newcomer never exceeds the capacity the
 * machine advertises (units it would displace are credited). A reservation of 0 always fits.
 * Reasons name every resource that does not fit, and whether waiting can help: `are too small
 * for 8 CPUs and 100 GiB memory` (the machine's whole capacity is less: no amount of waiting
 * helps), `lack 0.5 CPU free` (others reserve it), or both, `are too small for 8 CPUs and
 * lack 256 MiB memory free`. Only the request appears, never the free amount, so one reason
 * covers every machine short in the same way.
 */
export const ResourcesChecker: FeasibilityChecker = {
  name: 'ResourcesChecker',
  byName: false,
  accepts(_ctx, u, s, probe) {
    const cap = s.machine.capacity;
    if (u.cpu > 0 && s.cpu - probe.freedCpu + u.cpu > cap.cpuMillicores) return false;
    if (u.memory > 0 && s.memory - probe.freedMemory + u.memory > cap.memoryBytes) return false;
    return true;
  },
  explain(_ctx, u, s, probe) {
    const cap = s.machine.capacity;
    const small: string[] = [];
    const busy: string[] = [];
    if (u.cpu > 0) {
      if (u.cpu > cap.cpuMillicores) small.push(formatCpu(u.cpu));
      else if (s.cpu - probe.freedCpu + u.cpu > cap.cpuMillicores) busy.push(formatCpu(u.cpu));
    }
    if (u.memory > 0) {
      const memory = `${formatBytes(u.memory)} memory`;
      if (u.memory > cap.memoryBytes) small.push(memory);
      else if (s.memory - probe.freedMemory + u.memory > cap.memoryBytes) busy.push(memory);
    }
    const tooSmall = `are too small for ${small.join(' and ')}`;
    const lacking = `lack ${busy.join(' and ')} free`;
    if (small.length > 0) return busy.length > 0 ? `${tooSmall} and ${lacking}` : tooSmall;
    return lacking;
  },
};

/** Millicores as cores, as flotctl shows them: `8 CPUs`, `1 CPU`, `0.5 CPU`, `1.25 CPUs`. */
export function formatCpu(millicores: number): string {
  const cores = millicores / 1000;
  return `${cores} CPU${cores > 1 ? 's' : ''}`;
}

/**
 * MaxPerMachine=N: at most N instances of the unit's template on one machine (displaced
 * instances credited). Reason: `already run 2 instances of api@.service (MaxPerMachine=2)`.
 */
export const MaxPerMachineChecker: FeasibilityChecker = {
  name: 'MaxPerMachineChecker',
  byName: false,
  accepts(_ctx, u, s, probe) {
    if (u.maxPerMachine === 0 || u.template === '') return true;
    const here = (s.templates.get(u.template) ?? 0) - probe.freedSameTemplate;
    return here < u.maxPerMachine;
  },
  explain(_ctx, u) {
    const n = u.maxPerMachine;
    return `already run ${n} instance${n === 1 ? '' : 's'} of ${u.template} (MaxPerMachine=${n})`;
  },
};
