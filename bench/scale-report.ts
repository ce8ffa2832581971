/**
 * The scale benchmark's figures: every measure with its target, what was measured (or why
 * nothing was: a figure is null with a reason, never a guess), the human table and the one
 * JSON line that ends the output.
 */

/** How a figure is shown. */
type Unit = 'ms' | 'bytes' | 'pct' | 'count';

/** One measure: its JSON key, its row label, and the target it must not exceed, if any. */
interface Measure {
  readonly key: string;
  readonly label: string;
  readonly unit: Unit;
  readonly target?: number;
}

const GIB = 1024 ** 3;

/** Every measure, in the order the benchmark takes them and the table shows them. */
export function measures(
  count: number,
  low: number,
  electionTtlS: number,
  startFiles: number,
): Measure[] {
  const n = count.toLocaleString('en-US');
  const m = low.toLocaleString('en-US');
  return [
    { key: 'scalePlacedMs', label: `scale to ${n} -> all placed`, unit: 'ms', target: 10_000 },
    {
      key: 'scaleActiveMs',
      label: `scale to ${n} -> all active in list-units`,
      unit: 'ms',
      target: 15_000,
    },
    { key: 'scaleRpcMs', label: '  flotctl scale printed "Scaled ..."', unit: 'ms' },
    { key: 'scaleMachineLeasesLost', label: '  machine leases lost', unit: 'count', target: 0 },
    { key: 'scaleElectionKeysLost', label: '  election leases lost', unit: 'count', target: 0 },
    { key: 'scaleLeaderChanges', label: '  leader changes', unit: 'count', target: 0 },
    {
      key: 'scaleLoopP99LeaderMs',
      label: '  event-loop delay p99, leader (sched-a)',
      unit: 'ms',
      target: 100,
    },
    {
      key: 'scaleLoopOverLeader',
      label: '    its delays over 100 ms',
      unit: 'count',
    },
    { key: 'scaleLoopSamplesLeader', label: '    of delays sampled (every 50 ms)', unit: 'count' },
    {
      key: 'scaleLoopP99FollowerMs',
      label: '  event-loop delay p99, follower (sched-b)',
      unit: 'ms',
      target: 100,
    },
    {
      key: 'scaleLoopP99BenchMs',
      label: '  event-loop delay p99, simulated machines and agents',
      unit: 'ms',
    },
    { key: 'scaleFlotctlMs', label: '  flotctl scale returned (waits)', unit: 'ms' },
    {
      key: 'scaleStatusMs',
      label: '  status web@1.service meanwhile (median)',
      unit: 'ms',
      target: 300,
    },
    { key: 'scaleStatusMaxMs', label: '    longest', unit: 'ms' },
    {
      key: 'scaleListMachineMs',
      label: '  list-units --machine M meanwhile (median)',
      unit: 'ms',
      target: 300,
    },
    { key: 'scaleListMachineMaxMs', label: '    longest', unit: 'ms' },
    {
      key: 'listUnitsMs',
      label: 'list-units, every unit (median of 3)',
      unit: 'ms',
      target: 2_000,
    },
    { key: 'listUnitsRows', label: '  rows printed', unit: 'count' },
    { key: 'flotctlStartMs', label: 'flotctl --help: start, no API (median of 5)', unit: 'ms' },
    { key: 'statusMs', label: 'status web@77.service (median of 5)', unit: 'ms', target: 300 },
    {
      key: 'listUnitsMachineMs',
      label: 'list-units --machine M (median of 5)',
      unit: 'ms',
      target: 300,
    },
    { key: 'listMachinesMs', label: 'list-machines (median of 5)', unit: 'ms', target: 500 },
    { key: 'listMachinesRows', label: '  rows printed', unit: 'count' },
    { key: 'leaderRssBytes', label: 'leader RSS at full size', unit: 'bytes', target: GIB },
    { key: 'followerRssBytes', label: 'follower RSS at full size', unit: 'bytes', target: GIB },
    {
      key: 'leaderIdleCpuPct',
      label: 'leader CPU idle, 10 s (% of a core)',
      unit: 'pct',
      target: 5,
    },
    { key: 'followerIdleCpuPct', label: '  follower CPU, same 10 s', unit: 'pct' },
    { key: 'etcdDbBytes', label: "etcd's database at full size", unit: 'bytes' },
    {
      key: 'startPlacedMs',
      label: `start ${startFiles.toLocaleString('en-US')} unit files -> all placed`,
      unit: 'ms',
      target: 5_000,
    },
    { key: 'startFlotctlMs', label: '  flotctl start returned (waits)', unit: 'ms' },
    { key: 'lossUnits', label: 'units on the machines lost', unit: 'count' },
    {
      key: 'lossRecoveredMs',
      label: 'machines lost -> all running elsewhere',
      unit: 'ms',
      target: 15_000,
    },
    {
      key: 'scaleDownFlotctlMs',
      label: `scale to ${m} -> flotctl returned`,
      unit: 'ms',
      target: 10_000,
    },
    {
      key: 'scaleDownPlacedMs',
      label: `scale to ${m} -> ${m} placements`,
      unit: 'ms',
      target: 10_000,
    },
    {
      key: 'leaderKillPlacedMs',
      label: 'leader SIGKILL -> successor places',
      unit: 'ms',
      target: (electionTtlS + 5) * 1000,
    },
    { key: 'unplannedLeaseLosses', label: 'machine leases lost unplanned', unit: 'count' },
  ];
}

/** Figures as they are measured. A key never set is reported null with "not measured". */
export class Report {
  private readonly values = new Map<string, number | null>();
  private readonly reasons = new Map<string, string>();

  constructor(private readonly list: readonly Measure[]) {}

  set(key: string, value: number): void {
    this.values.set(key, value);
    this.reasons.delete(key);
  }

  /** No figure for `key`: `reason` says why (timed out, flotctl failed, ...). */
  miss(key: string, reason: string): void {
    this.values.set(key, null);
    this.reasons.set(key, reason);
  }

  /** Every figure not measured yet is null with `reason` (the set-up failed, say). */
  missAll(reason: string): void {
    for (const m of this.list) if (!this.values.has(m.key)) this.miss(m.key, reason);
  }

  get(key: string): number | null | undefined {
    return this.values.get(key);
  }

  /** Whether any figure is missing or over its target. */
  get anyMiss(): boolean {
    return this.list.some((m) => this.verdict(m) === 'MISS');
  }

  /** The human table: measure, target, figure, and pass / MISS (with the reason for a null). */
  table(): string {
    const rows = this.list.map((m) => {
      const value = this.values.get(m.key) ?? null;
      const verdict = this.verdict(m);
      const reason = this.reasons.get(m.key) ?? (this.values.has(m.key) ? '' : 'not measured');
      return [
        m.label,
        m.target === undefined ? '' : `<= ${show(m.unit, m.target)}`,
        value === null ? 'null' : show(m.unit, value),
        value === null && reason !== '' ? `${verdict} (${reason})` : verdict,
      ];
    });
    const header = ['measure', 'target', 'figure', 'result'];
    const widths = header.map((h, i) =>
      Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)),
    );
    const line = (r: readonly string[]): string =>
      r
        .map((c, i) => (i === 1 || i === 2 ? c.padStart(widths[i] ?? 0) : c.padEnd(widths[i] ?? 0)))
        .join('  ')
        .trimEnd();
    return [line(header), ...rows.map(line)].join('\n');
  }

  /** The one JSON line: every figure (null when missing), the targets, misses and reasons. */
  json(meta: Record<string, unknown>): string {
    const figures: Record<string, number | null> = {};
    const targets: Record<string, number> = {};
    for (const m of this.list) {
      figures[m.key] = this.values.get(m.key) ?? null;
      if (m.target !== undefined) targets[m.key] = m.target;
    }
    const misses = this.list.filter((m) => this.verdict(m) === 'MISS').map((m) => m.key);
    const reasons: Record<string, string> = {};
    for (const m of this.list) {
      const reason =
        this.reasons.get(m.key) ?? (this.values.has(m.key) ? undefined : 'not measured');
      if (reason !== undefined) reasons[m.key] = reason;
    }
    return JSON.stringify({ bench: 'scale', ...meta, figures, targets, misses, reasons });
  }

  /** pass or MISS against the target ('' without one); a missing figure misses its target. */
  private verdict(m: Measure): string {
    const value = this.values.get(m.key) ?? null;
    if (m.target === undefined) return value === null && this.values.has(m.key) ? 'n/a' : '';
    return value !== null && value <= m.target ? 'pass' : 'MISS';
  }
}

function show(unit: Unit, value: number): string {
  switch (unit) {
    case 'ms':
      return value >= 1000 ? `${(value / 1000).toFixed(2)} s` : `${Math.round(value)} ms`;
    case 'bytes':
      return value >= GIB
        ? `${(value / GIB).toFixed(2)} GiB`
        : `${(value / 1024 ** 2).toFixed(0)} MiB`;
    case 'pct':
      return `${value.toFixed(1)} %`;
    case 'count':
      return value.toLocaleString('en-US');
  }
}
