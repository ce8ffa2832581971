/**
 * `flotctl render --template FILE [--out FILE] [--watch] [--exec CMD]`: renders a Handlebars
 * template with the services and their healthy endpoints (consul-template's model, what fleet
 * users did by hand with etcdctl and sed), writes it atomically and only when it changed,
 * and runs CMD after each change. With --watch it follows the API's event stream (flotctl
 * talks to the scheduler only, never to etcd) and renders again on every service or endpoint
 * change, a burst of changes rendered once.
 */
import { readFile, stat } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseDurationMs } from '../../daemon/command-line.js';
import { formatDuration } from '../../lib/duration.js';
import type { ApiClient } from '../client.js';
import { withClient } from '../client.js';
import { CliError } from '../cli-error.js';
import {
  compileTemplate,
  MAX_TEMPLATE_BYTES,
  ServiceModel,
  type Renderer,
} from '../render-model.js';
import { execOk, execReport, ExecRunner, writeIfChanged } from '../render-output.js';
import {
  EXIT_FAILURE,
  EXIT_OK,
  UsageError,
  type CliIo,
  type GlobalOptions,
  type Verb,
  parseVerbArgs,
} from '../verb.js';

const HELP = `Usage: flotctl render --template FILE [--out FILE] [--watch] [--exec CMD] [--set KEY=VALUE]...

Renders a Handlebars template with the cluster's services and their healthy endpoints, for
a load balancer Flotilla does not drive (nginx, HAProxy, Envoy...). The output is written
atomically (a temporary file, then a rename) and only when it changed; CMD then runs (for
example a reload). Without --out the output goes to stdout.

The template sees (docs/cli.md, "render"):
  services           every service by name, in name order: {{#each services}}...{{/each}}
    .name .publish .publishPortName .tags .units
    .endpoints       its healthy endpoints: .unit .machine .address .port .hostPort
                     .portName .tags .health
  vars               the --set values
Helpers: (service "web") a service or an empty one; (byTag endpoints "blue") and
(byPort endpoints "http") select endpoints; (hasTag e "blue"), (eq a b), (ne a b) test.

Options:
  --template FILE     the template (at most 1 MiB)
  --out FILE          where to write (default: stdout)
  --watch             keep rendering on every service or endpoint change, until Ctrl-C
  --exec CMD          run CMD (with /bin/sh -c) after each change of the output; one run at
                      a time: changes during a run make one more run after it
  --exec-timeout DUR  kill a CMD still running after DUR (default 60s)
  --set KEY=VALUE     a value for the template (vars.KEY), e.g. --set live=green

Exit status: 0; 1 when the template does not compile or render, CMD failed (without
--watch), or the API refused; 2 for a usage error.
`;

/** Quiet time after a change before rendering: a burst of changes renders once. */
const SETTLE_MS = 50;
/** Between attempts to follow the API again after the stream broke. */
const RETRY_MS = 2_000;

export const renderVerb: Verb = {
  name: 'render',
  summary: "render a template (nginx, HAProxy...) with the services' endpoints, on every change",
  help: HELP,
  async run(args: readonly string[], io: CliIo, globals: GlobalOptions): Promise<number> {
    const { values, positionals } = parseVerbArgs(args, {
      template: { type: 'string' },
      out: { type: 'string' },
      watch: { type: 'boolean' },
      exec: { type: 'string' },
      'exec-timeout': { type: 'string' },
      set: { type: 'string', multiple: true },
    });
    if (positionals.length > 0) throw new UsageError(`unexpected argument "${positionals[0]}"`);
    if (values.template === undefined) throw new UsageError('--template FILE is required');
    if (values.exec === '') throw new UsageError('--exec needs a command');
    const timeoutMs = parseTimeout(values['exec-timeout']);
    const vars = parseVars(values.set ?? []);
    const render = compileTemplate(await readTemplate(values.template), values.template);
    const command = values.exec;
    const outcome = { failed: false };
    const runner =
      command === undefined
        ? undefined
        : new ExecRunner({
            command,
            timeoutMs,
            report: (r) => {
              io.stderr(execReport(command, r));
              if (!execOk(r)) outcome.failed = true;
            },
          });
    const target = new Target(io, values.out, render, vars, runner);
    return withClient(globals, async (api) => {
      let model = await loadModel(api);
      await target.render(model.model);
      if (values.watch !== true) {
        await runner?.idle();
        return outcome.failed ? EXIT_FAILURE : EXIT_OK;
      }
      for (;;) {
        try {
          await follow(api, io, model.model, model.revision, target);
          if (stopped(io)) break;
          throw new CliError('unavailable', 'the scheduler closed the stream');
        } catch (err) {
          if (stopped(io)) break;
          if (!(err instanceof CliError) || ['refused', 'tls', 'file'].includes(err.code))
            throw err;
          io.stderr(
            `render: lost the Flotilla API (${err.message}); reading the services again in ${formatDuration(RETRY_MS)}\n`,
          );
          await sleep(RETRY_MS, undefined, { signal: io.signal }).catch(() => undefined);
          if (stopped(io)) break;
          try {
            model = await loadModel(api);
            await target.render(model.model);
          } catch (again) {
            if (!(again instanceof CliError) || again.code === 'refused') throw again;
          }
        }
      }
      await runner?.idle();
      return EXIT_OK;
    });
  },
};

/** Whether the user stopped the command (Ctrl-C). */
function stopped(io: CliIo): boolean {
  return io.signal?.aborted === true;
}

/** Where renders go, and what runs after each change. Renders one at a time. */
class Target {
  private last: string | undefined;
  private chain: Promise<void> = Promise.resolve();

  constructor(
    private readonly io: CliIo,
    private readonly out: string | undefined,
    private readonly template: Renderer,
    private readonly vars: Readonly<Record<string, string>>,
    private readonly runner: ExecRunner | undefined,
  ) {}

  /** Renders the model now (after any render under way); writes and runs CMD on a change. */
  render(model: ServiceModel): Promise<void> {
    const next = this.chain.then(() => this.renderNow(model));
    this.chain = next.catch(() => undefined);
    return next;
  }

  private async renderNow(model: ServiceModel): Promise<void> {
    const data = model.data(this.vars);
    const text = this.template(data);
    if (text === this.last) return;
    let changed = true;
    if (this.out === undefined) this.io.stdout(text);
    else changed = await writeIfChanged(this.out, text);
    // Only once written: a write that failed (a full disk) is tried again at the next change.
    this.last = text;
    if (!changed) return;
    const services = Object.values(data.services);
    const endpoints = services.reduce((n, s) => n + s.endpoints.length, 0);
    if (this.out !== undefined) {
      this.io.stderr(
        `render: wrote ${this.out} (${services.length} service${services.length === 1 ? '' : 's'}, ${endpoints} healthy endpoint${endpoints === 1 ? '' : 's'})\n`,
      );
    }
    this.runner?.trigger();
  }
}

/** Every service the caller may read, with all its endpoints, and the revision to follow from. */
async function loadModel(api: ApiClient): Promise<{ model: ServiceModel; revision: bigint }> {
  const listing = await api.listServices();
  const model = new ServiceModel();
  for (const s of listing.services) {
    try {
      const res = await api.listEndpoints({ service: s.name });
      model.setService(
        s.name,
        res.service,
        res.endpoints.flatMap((e) => e.endpoint ?? []),
      );
    } catch (err) {
      // Gone between the two reads: the events from the listing's revision on say so.
      if (!(err instanceof CliError) || err.code !== 'refused') throw err;
    }
  }
  // Replaying from the listing's revision is safe: each key ends at its latest change.
  return { model, revision: listing.revision };
}

/** Follows service and endpoint events, rendering after each burst; returns when the stream ends. */
async function follow(
  api: ApiClient,
  io: CliIo,
  model: ServiceModel,
  revision: bigint,
  target: Target,
): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  // A render that fails (a template error on new data, a file that cannot be written) is
  // said and the watch goes on: the next change tries again, the last good output stays.
  const flush = (): void => {
    timer = undefined;
    target.render(model).catch((err: unknown) => {
      io.stderr(`render: ${err instanceof Error ? err.message : String(err)}\n`);
    });
  };
  try {
    const req = { fromRevision: revision + 1n, unitGlob: '', machine: '', withFiles: false };
    for await (const ev of api.watch(req, { follow: true, signal: io.signal })) {
      if (!model.apply(ev)) continue;
      timer ??= setTimeout(flush, SETTLE_MS);
    }
  } finally {
    if (timer !== undefined) {
      clearTimeout(timer);
      flush();
    }
  }
}

async function readTemplate(path: string): Promise<string> {
  try {
    const st = await stat(path);
    if (st.size > MAX_TEMPLATE_BYTES) {
      throw new CliError(
        'file',
        `--template ${path}: ${st.size} bytes, more than ${MAX_TEMPLATE_BYTES / 1024 / 1024} MiB; is it the right file?`,
      );
    }
    return await readFile(path, 'utf8');
  } catch (err) {
    if (err instanceof CliError) throw err;
    const why = err instanceof Error ? err.message : String(err);
    throw new CliError('file', `--template ${path}: cannot read it (${why})`);
  }
}

function parseTimeout(raw: string | undefined): number {
  if (raw === undefined) return 60_000;
  const ms = parseDurationMs(raw);
  if (ms === undefined || ms <= 0) {
    throw new UsageError(`--exec-timeout=${raw}: expected a duration such as 30s or 2m`);
  }
  return ms;
}

/** `--set KEY=VALUE` pairs; a key is letters, digits, `_` and `-`. */
export function parseVars(pairs: readonly string[]): Record<string, string> {
  const vars: Record<string, string> = {};
  for (const pair of pairs) {
    const m = /^([A-Za-z_][A-Za-z0-9_-]{0,63})=(.{0,4096})$/s.exec(pair);
    if (m === null) {
      throw new UsageError(
        `--set ${pair.slice(0, 80)}: expected KEY=VALUE (KEY of letters, digits, _ and -)`,
      );
    }
    vars[m[1] as string] = m[2] as string;
  }
  return vars;
}
