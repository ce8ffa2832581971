/**
 * `flotilla cluster up|down|status|add-agent|restart`: the command line over up.ts, down.ts
 * and status.ts. Resolves to the exit code: 0 done, 1 failed (one message saying what to
 * do), 2 usage, 3 `status` found a process that does not run.
 */
import { join, relative } from 'node:path';
import { UsageError } from '../../daemon/options.js';
import { clusterDown } from './down.js';
import { COMMAND_USAGE } from './help.js';
import { REPO_ROOT, formatMetadata } from './launch.js';
import { CLUSTER_USAGE, parseClusterArgs } from './options.js';
import { clusterStatus, formatStatus } from './status.js';
import { ClusterError, etcdEndpoints, type ClusterRecord } from './state.js';
import { addAgent, clusterUp, restartProcess } from './up.js';

/** Exit code of `status` when a process of the cluster does not run (as `systemctl status`). */
export const EXIT_NOT_RUNNING = 3;

function shown(path: string): string {
  const rel = relative(process.cwd(), path);
  return rel === '' ? '.' : rel.startsWith('..') ? path : rel;
}

/**
 * What `up` prints once the cluster is ready: where it is and, unless `hints` is false (a
 * script that prints its own, like the quickstart), the commands to try.
 */
export function usageHint(record: ClusterRecord, opts: { hints?: boolean } = {}): string {
  const flotctl = shown(join(REPO_ROOT, 'bin', 'flotctl'));
  const flotilla = shown(join(REPO_ROOT, 'bin', 'flotilla'));
  const hello = shown(join(REPO_ROOT, 'deploy', 'examples', 'hello.service'));
  const service = shown(join(REPO_ROOT, 'deploy', 'examples', 'services', 'hello-http@.service'));
  const dirFlag = ` --dir ${shown(record.dir)}`;
  const machines = record.agents.map(
    (a) => `  ${a.machineId.slice(0, 12)}  ${a.ip.padEnd(15)}  ${formatMetadata(a.metadata)}`,
  );
  return [
    '',
    `Cluster "${record.name}" is up: ${record.agents.length} machines, ${record.apiAddresses.length} schedulers, driver ${record.driver}.`,
    `  directory  ${record.dir} (logs in logs/)`,
    `  etcd       ${etcdEndpoints(record).join(',')}`,
    `  API        ${record.apiAddresses.join(', ')}`,
    ...(record.httpAddresses?.[0] === undefined
      ? []
      : [`  console    http://${record.httpAddresses[0]}/ui/`]),
    ...(record.registry ? [`  registry   ${record.registry.addr}`] : []),
    ...(record.network
      ? [`  network    bridge ${record.network.bridge} ${record.network.subnet}`]
      : []),
    '  machines',
    ...machines,
    '',
    ...(opts.hints === false ? [] : useIt(record, flotctl, flotilla, hello, dirFlag)),
    ...(opts.hints === false ? [] : tryService(record, flotctl, service)),
  ].join('\n');
}

function useIt(
  record: ClusterRecord,
  flotctl: string,
  flotilla: string,
  hello: string,
  dirFlag: string,
): string[] {
  return [
    'Use it:',
    `  export FLOTCTL_ENDPOINT=${record.apiAddresses[0] ?? ''}`,
    `  ${flotctl} list-machines`,
    `  ${flotctl} start ${hello}`,
    `  ${flotctl} journal -f hello.service`,
    `  ${flotilla} cluster status${dirFlag}`,
    `  ${flotilla} cluster down${dirFlag}`,
    '',
  ];
}

/** The example service: 3 instances, then a curl to the published port of a machine. */
function tryService(record: ClusterRecord, flotctl: string, service: string): string[] {
  return [
    'Run a service of 3 instances, published on port 9080 of every machine:',
    `  ${flotctl} submit ${service}`,
    `  ${flotctl} scale hello-http@.service=3`,
    `  curl http://${record.agents[0]?.ip ?? '127.0.0.1'}:9080/`,
    '',
  ];
}

/** Runs `flotilla cluster ...` (the arguments after `cluster`); resolves to the exit code. */
export async function runCluster(argv: readonly string[]): Promise<number> {
  const args = parseClusterArgs(argv);
  const own = args.command === undefined ? undefined : COMMAND_USAGE[args.command];
  if (args.help && own !== undefined) {
    process.stdout.write(own);
    return 0;
  }
  if (args.help || args.command === undefined) {
    (args.help ? process.stdout : process.stderr).write(CLUSTER_USAGE);
    return args.help ? 0 : 2;
  }
  const say = (line: string): void => void process.stdout.write(`${line}\n`);
  try {
    switch (args.command) {
      case 'up': {
        noPositionals(args.positionals);
        const record = await clusterUp(args.up, say);
        say(usageHint(record, { hints: !args.noHints }));
        return 0;
      }
      case 'down': {
        noPositionals(args.positionals);
        const res = await clusterDown(args.dir, { purge: args.purge });
        if (res.killed.length > 0) say(`did not stop on SIGTERM, killed: ${res.killed.join(', ')}`);
        say(`cluster in ${args.dir} is down${res.purged ? ' and its directory removed' : ''}`);
        return 0;
      }
      case 'status': {
        noPositionals(args.positionals);
        const status = await clusterStatus(args.dir);
        process.stdout.write(formatStatus(status));
        return status.allRunning ? 0 : EXIT_NOT_RUNNING;
      }
      case 'add-agent': {
        noPositionals(args.positionals);
        const agent = await addAgent(args.dir, args.metadata);
        say(
          `agent-${agent.index}: machine ${agent.machineId} ${agent.ip} registered (${formatMetadata(agent.metadata)})`,
        );
        return 0;
      }
      case 'restart': {
        const [name, ...extra] = args.positionals;
        if (name === undefined || extra.length > 0)
          throw new UsageError('restart takes one process name');
        await restartProcess(args.dir, name);
        say(`${name} restarted`);
        return 0;
      }
      default:
        throw new UsageError(`unknown cluster command "${args.command}"`);
    }
  } catch (err) {
    if (err instanceof ClusterError) {
      process.stderr.write(`flotilla cluster ${args.command}: ${err.message}\n`);
      return 1;
    }
    throw err;
  }
}

function noPositionals(rest: readonly string[]): void {
  if (rest.length > 0) throw new UsageError(`unexpected argument "${rest[0] ?? ''}"`);
}
