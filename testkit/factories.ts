/**
 * Factories for the records and unit files tests need, with defaults that make a valid,
 * unremarkable instance; each test overrides only what its behaviour depends on.
 */
import { randomBytes } from 'node:crypto';
import type { Machine, Resources, Unit } from '../proto/flotilla/v1/records.js';

/** 8 GiB, the default machine memory. */
export const GIB = 1024n * 1024n * 1024n;

/** Overrides for {@link makeMachine}; `capacity` may be partial. */
export type MachineOverrides = Partial<Omit<Machine, 'capacity'>> & {
  capacity?: Partial<Resources>;
};

/**
 * A `machines/<id>` record: a random 32-hex id (like a systemd machine-id, so MachineID
 * prefixes are unambiguous), no metadata, 4000 millicores, 8 GiB, 1024 tasks, driver
 * `process`, address 127.0.0.1.
 */
export function makeMachine(overrides: MachineOverrides = {}): Machine {
  const id = overrides.id ?? randomBytes(16).toString('hex');
  const { capacity, ...rest } = overrides;
  return {
    id,
    addresses: ['127.0.0.1'],
    metadata: {},
    driver: 'process',
    version: '0.1.0',
    agentEndpoint: '127.0.0.1:4701',
    portRangeFirst: 20000,
    portRangeLast: 32767,
    dnsEndpoint: '',
    startedAt: 0n,
    meshProblems: [],
    ...rest,
    capacity: { cpuMillicores: 4000n, memoryBytes: 8n * GIB, tasks: 1024n, ...capacity },
  };
}

/** A multi-valued unit-file section: repeated keys are arrays, written as repeated lines. */
export type SectionValues = Record<string, string | readonly string[]>;

/** What {@link unitText} builds a unit file from. */
export interface UnitTextOptions {
  /** `[Unit] Description=`; default `test unit`. */
  description?: string;
  /** `[Service] ExecStart=`; default a long sleep. */
  exec?: string;
  /** More `[Service]` keys (e.g. `{ MemoryMax: '64M', Restart: 'always' }`). */
  service?: SectionValues;
  /** `[X-Fleet]` keys; the section is omitted when absent or empty. */
  xfleet?: SectionValues;
  /** More `[Unit]` keys. */
  unit?: SectionValues;
}

/**
 * A unit file's text, sections in the usual order, ending in a newline.
 *
 * @example
 *   unitText({ exec: '/bin/true', xfleet: { Conflicts: 'web@*.service', MachineMetadata: ['a=1', 'b=2'] } })
 */
export function unitText(opts: UnitTextOptions = {}): string {
  const sections: string[] = [];
  sections.push(
    section('Unit', { Description: opts.description ?? 'test unit', ...(opts.unit ?? {}) }),
  );
  sections.push(
    section('Service', { ExecStart: opts.exec ?? '/bin/sleep 3600', ...(opts.service ?? {}) }),
  );
  if (opts.xfleet !== undefined && Object.keys(opts.xfleet).length > 0) {
    sections.push(section('X-Fleet', opts.xfleet));
  }
  return sections.join('\n');
}

/**
 * A `units/<name>` record holding `file` (default {@link unitText}()). `hash` is a placeholder
 * unless given: tests that care about hashes pass the real one from unit/.
 */
export function makeUnit(overrides: Partial<Unit> & { name: string }): Unit {
  return {
    file: unitText(),
    hash: `hash-of-${overrides.name}`,
    desiredState: 'launched',
    ...overrides,
  };
}

function section(name: string, values: SectionValues): string {
  const lines = [`[${name}]`];
  for (const [key, value] of Object.entries(values)) {
    const list: readonly string[] = typeof value === 'string' ? [value] : value;
    for (const item of list) lines.push(`${key}=${item}`);
  }
  return `${lines.join('\n')}\n`;
}
