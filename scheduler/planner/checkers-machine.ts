/**
 * Checkers that look at the machine alone (drained, id, metadata) or at its totals
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
 * Reasons: `lack 500m free CPU`, `lack 256 MiB free memory` (the request, never the free
 * amount, so one reason covers every machine short of it).
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
    if (u.cpu > 0 && s.cpu - probe.freedCpu + u.cpu > cap.cpuMillicores) {
      return `lack ${u.cpu}m free CPU`;
    }
    return `lack ${formatBytes(u.memory)} free memory`;
  },
};

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
