/**
 * `flotctl list-services`: the services units declare ([X-Service]) and what serves them:
 * healthy endpoints out of all (registered, plus placed instances' ports not registered yet),
 * the routing mesh's published port and the endpoints' tags.
 */
import type { ServiceStatus } from '../../proto/flotilla/v1/services.js';
import { withClient } from '../client.js';
import {
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

const COLUMNS: Readonly<Record<string, Column<ServiceStatus>>> = {
  name: (s) => s.name,
  endpoints: (s) => `${s.healthy}/${s.total}`,
  publish: (s) => (s.publish > 0 ? String(s.publish) : '-'),
  tags: (s) => (s.tags.length === 0 ? '-' : s.tags.join(',')),
  units: (s) => (s.units.length === 0 ? '-' : s.units.join(',')),
  port: (s) => s.publishPortName || '-',
};
const DEFAULTS = 'name,endpoints,publish,tags';

const HELP = `Usage: flotctl list-services [--fields LIST] [--no-legend]

Lists the services that submitted units declare ([X-Service] Name=, or the unit's prefix) or
that running instances still serve, in name order:
  NAME       the service (DNS: NAME.service.flotilla)
  ENDPOINTS  healthy/total: endpoints that take traffic, out of every registered endpoint
             plus each placed instance's port that has none yet (starting, failing its
             health check, stopping)
  PUBLISH    the routing mesh's port on every machine (Publish=), or -
  TAGS       the endpoints' tags (Tags=), each once
flotctl endpoints NAME lists one service's endpoints.

Options:
${tableHelp(COLUMNS, DEFAULTS)}  -o json         one flat object per service: name, healthy, total, publish, publishPortName,
                  tags, units, declared
`;

export const listServicesVerb: Verb = {
  name: 'list-services',
  summary: 'list the services, with healthy/total endpoints, published port and tags',
  help: HELP,
  async run(args: readonly string[], io: CliIo, globals: GlobalOptions): Promise<number> {
    const { values, positionals } = parseVerbArgs(args, TABLE_FLAGS);
    if (positionals.length > 0) throw new UsageError(`unexpected argument "${positionals[0]}"`);
    const fields = parseFields(values.fields, COLUMNS, DEFAULTS);
    const res = await withClient(globals, (api) => api.listServices());
    printWarnings(io, res.warnings);
    if (globals.output === 'json') {
      printJson(
        io,
        res.services.map((s) => ({
          name: s.name,
          healthy: s.healthy,
          total: s.total,
          publish: s.publish > 0 ? s.publish : null,
          publishPortName: s.publishPortName === '' ? null : s.publishPortName,
          tags: s.tags.length === 0 ? null : s.tags.join(','),
          units: s.units.length === 0 ? null : s.units.join(','),
          declared: s.declared,
        })),
      );
      return EXIT_OK;
    }
    const opts = { full: values.full === true, legend: values['no-legend'] !== true };
    io.stdout(renderTable(res.services, fields, COLUMNS, opts));
    return EXIT_OK;
  },
};
