/**
 * What `flotctl render` renders: the services and their endpoints, kept up to date from the
 * API (a listing, then the endpoint and service events of Events.Watch), and the data model a
 * template sees (docs/cli.md, "render"), with helpers to select endpoints by tag or port.
 * consul-template's model, over Flotilla's records: nothing here reaches etcd.
 *
 * Templates are Handlebars, compiled without HTML escaping (they write nginx or HAProxy
 * configs, not web pages) and in strict-free mode: a missing service renders as empty.
 */
import Handlebars from 'handlebars';
import type { Event } from '../proto/flotilla/v1/events.js';
import type { Endpoint, Service } from '../proto/flotilla/v1/records.js';
import { CliError } from './cli-error.js';

/** One endpoint as a template sees it. */
export interface EndpointView {
  readonly unit: string;
  readonly machine: string;
  readonly address: string;
  readonly port: number;
  /** `address:port`, what an upstream or server line wants. */
  readonly hostPort: string;
  readonly portName: string;
  readonly tags: readonly string[];
  readonly health: string;
}

/** One service as a template sees it. */
export interface ServiceView {
  readonly name: string;
  /** The routing mesh's port on every machine, or null when it is not published. */
  readonly publish: number | null;
  readonly publishPortName: string;
  /** Its healthy endpoints (health passing, or no check), by machine, unit and port. */
  readonly endpoints: readonly EndpointView[];
  /** Every tag of those endpoints, sorted, each once. */
  readonly tags: readonly string[];
  readonly units: readonly string[];
}

/** The root of a template's data. */
export interface RenderData {
  /** Services by name, in name order (`{{#each services}}`, `services.web`). */
  readonly services: Readonly<Record<string, ServiceView>>;
  /** `--set KEY=VALUE` values (`vars.live`). */
  readonly vars: Readonly<Record<string, string>>;
}

/** What one service is known by: its record (if declared) and its endpoints by key. */
interface Known {
  record: Service | undefined;
  readonly endpoints: Map<string, Endpoint>;
}

/** The services and endpoints the caller may read, as the API reported them. */
export class ServiceModel {
  private readonly known = new Map<string, Known>();

  /** Replaces one service's endpoints (a listing of it). */
  setService(name: string, record: Service | undefined, endpoints: readonly Endpoint[]): void {
    const of = new Map<string, Endpoint>();
    for (const e of endpoints) of.set(endpointKey(e.machine, e.unit, e.portName), e);
    this.known.set(name, { record, endpoints: of });
  }

  /** Applies one event; true when it was about services or endpoints. */
  apply(ev: Event): boolean {
    if (ev.kind === 'service') {
      const k = this.entry(ev.serviceName);
      k.record = ev.type === 'put' ? ev.service : undefined;
      this.prune(ev.serviceName, k);
      return true;
    }
    if (ev.kind !== 'endpoint') return false;
    const k = this.entry(ev.serviceName);
    const key = endpointKey(ev.machine, ev.name, ev.portName);
    if (ev.type === 'put' && ev.endpoint !== undefined) k.endpoints.set(key, ev.endpoint);
    else k.endpoints.delete(key);
    this.prune(ev.serviceName, k);
    return true;
  }

  /** The template's data: every service, with its healthy endpoints. */
  data(vars: Readonly<Record<string, string>>): RenderData {
    const services: Record<string, ServiceView> = {};
    for (const name of [...this.known.keys()].sort()) {
      const k = this.known.get(name) as Known;
      const endpoints = [...k.endpoints.entries()]
        .filter(([, e]) => isServing(e))
        .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
        .map(([, e]) => endpointView(e));
      services[name] = {
        name,
        publish: k.record !== undefined && k.record.publish > 0 ? k.record.publish : null,
        publishPortName: k.record?.publishPortName ?? '',
        endpoints,
        tags: [...new Set(endpoints.flatMap((e) => e.tags))].sort(),
        units: k.record?.units ?? [],
      };
    }
    return { services, vars };
  }

  private entry(name: string): Known {
    let k = this.known.get(name);
    if (k === undefined) this.known.set(name, (k = { record: undefined, endpoints: new Map() }));
    return k;
  }

  private prune(name: string, k: Known): void {
    if (k.record === undefined && k.endpoints.size === 0) this.known.delete(name);
  }
}

function endpointKey(machine: string, unit: string, port: string): string {
  return `${machine}/${unit}/${port}`;
}

/** Health passing, or no check: as the API's ListEndpoints judges it. */
function isServing(e: Endpoint): boolean {
  return e.health === 'passing' || e.health === 'none' || e.health === '';
}

function endpointView(e: Endpoint): EndpointView {
  return {
    unit: e.unit,
    machine: e.machine,
    address: e.address,
    port: e.port,
    hostPort: `${e.address.includes(':') ? `[${e.address}]` : e.address}:${e.port}`,
    portName: e.portName,
    tags: e.tags,
    health: e.health || 'none',
  };
}

/** The most template text read, and the most output a render may produce. */
export const MAX_TEMPLATE_BYTES = 1024 * 1024;
export const MAX_OUTPUT_BYTES = 16 * 1024 * 1024;

/** A compiled template: data in, text out. */
export type Renderer = (data: RenderData) => string;

/**
 * Compiles `source` (from `file`, for messages) with Flotilla's helpers:
 * - `(service "web")`: that service, or an empty one (no endpoints) when there is none;
 * - `(byTag endpoints "blue")`, `(byPort endpoints "http")`: the endpoints with that tag, of
 *   that Port= name;
 * - `(hasTag endpoint "blue")`, `(eq a b)`, `(ne a b)`: tests for `#if`;
 * - `(slug text)`: letters, digits, `_`, `-` and `.` kept, anything else `_` (names for
 *   HAProxy servers and nginx upstreams from unit names such as `web@1.service`).
 * Throws CliError `file` naming the file and line of a syntax error.
 */
export function compileTemplate(source: string, file: string): Renderer {
  const hb = Handlebars.create();
  hb.registerHelper('service', (...args: unknown[]) => {
    const [name, options] = args as [unknown, { data?: { root?: RenderData } }];
    const found = options.data?.root?.services[String(name)];
    return found ?? emptyService(String(name));
  });
  hb.registerHelper('byTag', (list: unknown, tag: unknown) =>
    endpointsOf(list).filter((e) => e.tags.includes(String(tag))),
  );
  hb.registerHelper('byPort', (list: unknown, port: unknown) =>
    endpointsOf(list).filter((e) => e.portName === String(port)),
  );
  hb.registerHelper('hasTag', (e: unknown, tag: unknown) =>
    isEndpointView(e) ? e.tags.includes(String(tag)) : false,
  );
  hb.registerHelper('slug', (text: unknown) => String(text).replace(/[^A-Za-z0-9_.-]/g, '_'));
  hb.registerHelper('eq', (a: unknown, b: unknown) => a === b);
  hb.registerHelper('ne', (a: unknown, b: unknown) => a !== b);
  let template: (data: RenderData) => string;
  try {
    template = hb.compile<RenderData>(source, { noEscape: true, strict: false });
    template({ services: {}, vars: {} }); // syntax errors surface on first use
  } catch (err) {
    throw new CliError('file', `${file}: ${templateProblem(err)}`);
  }
  return (data) => {
    let out: string;
    try {
      out = template(data);
    } catch (err) {
      throw new CliError('file', `${file}: ${templateProblem(err)}`);
    }
    if (Buffer.byteLength(out) > MAX_OUTPUT_BYTES) {
      throw new CliError(
        'refused',
        `${file}: the rendered output is larger than ${MAX_OUTPUT_BYTES / 1024 / 1024} MiB; check the template for a runaway #each`,
      );
    }
    return out;
  };
}

function emptyService(name: string): ServiceView {
  return { name, publish: null, publishPortName: '', endpoints: [], tags: [], units: [] };
}

function endpointsOf(list: unknown): EndpointView[] {
  return Array.isArray(list) ? list.filter(isEndpointView) : [];
}

function isEndpointView(e: unknown): e is EndpointView {
  return typeof e === 'object' && e !== null && Array.isArray((e as EndpointView).tags);
}

/** Handlebars' message, first lines only (it quotes the template around the problem). */
function templateProblem(err: unknown): string {
  const text = err instanceof Error ? err.message : String(err);
  return text.split('\n').slice(0, 4).join('\n').slice(0, 1_000);
}
