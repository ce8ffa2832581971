/**
 * `flotilla agent`: the daemon of one machine. Parses flags, `FLOTILLA_*` environment and the
 * optional config file (agent/options.ts), starts the agent (agent/daemon.ts) and runs until
 * SIGTERM or SIGINT. Then, by default, it stops its units and revokes its lease so the leader
 * moves them at once; with `--keep-units-on-exit` it leaves them running and registered until
 * the lease expires, so an upgraded agent started within the TTL adopts them unmoved.
 *
 * @example
 *   // bin/flotilla: `flotilla agent --machine-id m1 --etcd-endpoints http://127.0.0.1:2379`
 *   await runAgent(process.argv.slice(3));
 */
import { pathToFileURL } from 'node:url';
import { daemonLogger, UsageError } from '../cli/daemon-options.js';
import { startAgent } from './daemon.js';
import { AGENT_USAGE, parseAgentArgs } from './options.js';

export { AGENT_USAGE } from './options.js';

/**
 * The daemon: resolves after a clean shutdown (SIGTERM/SIGINT), or at once for `--help`.
 * Bad flags reject with UsageError (exit 2); failing to start (no runc where runc was asked
 * for, the Logs port taken) rejects too (exit 1).
 */
export async function runAgent(argv: string[]): Promise<void> {
  const parsed = parseAgentArgs(argv);
  if (parsed.help) {
    process.stdout.write(AGENT_USAGE);
    return;
  }
  const opts = parsed.options;
  const logger = daemonLogger('flotilla-agent', opts.logLevel);
  const agent = await startAgent(opts, logger);
  const signal = await new Promise<NodeJS.Signals>((resolve) => {
    const on = (sig: NodeJS.Signals): void => {
      process.off('SIGTERM', on);
      process.off('SIGINT', on);
      resolve(sig);
    };
    process.on('SIGTERM', on);
    process.on('SIGINT', on);
  });
  logger.info({ signal, keepUnits: opts.keepUnitsOnExit }, 'shutting down');
  await agent.close();
}

/** Run directly (`node dist/agent/main.js ...`): tests and benchmarks start agents so. */
if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  runAgent(process.argv.slice(2)).then(
    () => process.exit(0),
    (err: unknown) => {
      process.stderr.write(`flotilla agent: ${err instanceof Error ? err.message : String(err)}\n`);
      if (err instanceof UsageError) process.stderr.write(AGENT_USAGE);
      process.exit(err instanceof UsageError ? 2 : 1);
    },
  );
}
