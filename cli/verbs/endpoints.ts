/**
 * `flotctl endpoints NAME [--tag T]`: one service's endpoints, one row per port of each
 * running instance, as its agent registered it: the unit, its machine, the address:port to
 * connect to, whether it takes traffic, and its tags.
 */
import type { EndpointStatus } from '../../proto/flotilla/v1/services.js';
import { withClient } from '../client.js';
import {
  formatAge,
  machineId,
  parseFields,
  printJson,
  printWarnings,
  renderTable,
  TABLE_FLAGS,
  tableHelp,
  type Column,
} from '../table.js';
import {
  EXIT_OK,
  UsageError,
  type CliIo,
  type GlobalOptions,
  type Verb,
  parseVerbArgs,
} from '../verb.js';

/** A row and the time it is shown at (for ages). */
interface Row {
  readonly status: EndpointStatus;
  readonly now: number;
}

/** `passing`, `none` (no health check), or whatever else the agent says. */
export function healthText(s: EndpointStatus): string {
  const h = s.endpoint?.health ?? '';
  return h === '' ? 'none' : h;
}

const COLUMNS: Readonly<Record<string, Column<Row>>> = {
  unit: ({ status }) => status.endpoint?.unit ?? '-',
  machine: ({ status }, full) => machineId(status.endpoint?.machine ?? '', full),
  address: ({ status }) => `${status.endpoint?.address ?? ''}:${status.endpoint?.port ?? 0}`,
  health: ({ status }) => healthText(status),
  tags: ({ status }) => (status.endpoint?.tags.length ? status.endpoint.tags.join(',') : '-'),
  port: ({ status }) => status.endpoint?.portName || '-',
  service: ({ status }) => status.endpoint?.service || '-',
  age: ({ status, now }) => {
    const since = Number(status.endpoint?.sinceUnixMs ?? 0n);
    return since > 0 ? formatAge(since, now) : '-';
  },
};
const DEFAULTS = 'unit,machine,address,health,tags';

const HELP = `Usage: flotctl endpoints NAME [--tag TAG] [--healthy] [--fields LIST] [--no-legend] [-l]

Lists the endpoints of service NAME: one row per port of each running instance, registered
by the agent of its machine while the instance is active (and healthy, when it has a health
check), removed before it stops:
  UNIT     the instance
  MACHINE  where it runs
  ADDRESS  the machine's address and the instance's port, to connect to
  HEALTH   passing (its check passes) or none (it has no check)
  TAGS     its Tags=
Exit status: 0, 1 when no such service is known.

Options:
  --tag TAG       only endpoints with this tag (blue, green, canary...)
  --healthy       only endpoints that take traffic
${tableHelp(COLUMNS, DEFAULTS)}  -o json         one flat object per endpoint: service, unit, machine, address, port,
                  portName, health, healthy, tags, sinceUnixMs
`;

export const endpointsVerb: Verb = {
  name: 'endpoints',
  summary: "list a service's endpoints: unit, machine, address:port, health, tags",
  help: HELP,
  async run(args: readonly string[], io: CliIo, globals: GlobalOptions): Promise<number> {
    const { values, positionals } = parseVerbArgs(args, {
      ...TABLE_FLAGS,
      tag: { type: 'string' },
      healthy: { type: 'boolean' },
    });
    const [service, ...extra] = positionals;
    if (service === undefined) throw new UsageError('give the service to list the endpoints of');
    if (extra.length > 0) throw new UsageError(`unexpected argument "${extra[0]}"`);
    const fields = parseFields(values.fields, COLUMNS, DEFAULTS);
    const res = await withClient(globals, (api) =>
      api.listEndpoints({ service, tag: values.tag ?? '', healthyOnly: values.healthy === true }),
    );
    printWarnings(io, res.warnings);
    if (globals.output === 'json') {
      printJson(
        io,
        res.endpoints.map(({ endpoint: e, healthy }) => ({
          service: e?.service ?? service,
          unit: e?.unit ?? null,
          machine: e?.machine ?? null,
          address: e?.address || null,
          port: e?.port ?? null,
          portName: e?.portName || null,
          health: e?.health || 'none',
          healthy,
          tags: e?.tags.length ? e.tags.join(',') : null,
          sinceUnixMs: e !== undefined && e.sinceUnixMs > 0n ? Number(e.sinceUnixMs) : null,
        })),
      );
      return EXIT_OK;
    }
    const now = Date.now();
    const rows = res.endpoints.map((status) => ({ status, now }));
    const opts = { full: values.full === true, legend: values['no-legend'] !== true };
    io.stdout(renderTable(rows, fields, COLUMNS, opts));
    return EXIT_OK;
  },
};
