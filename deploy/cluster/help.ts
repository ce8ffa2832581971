/**
 * `flotilla cluster <command> --help`: each command's own usage, so `cluster restart --help`
 * says what restart does and takes rather than printing the help of every command.
 */

const DIR = '  --dir DIR               cluster directory (default ./.flotilla/cluster)\n';
const HELP = '  -h, --help              show this help\n';

/** Usage of each `flotilla cluster` command; `flotilla cluster --help` lists them all. */
export const COMMAND_USAGE: Readonly<Record<string, string>> = {
  up: `Usage: flotilla cluster up [flags]

Starts etcd, an image registry (when docker-registry is installed), two schedulers and N
agents as background processes, and waits until every machine has registered. As root with
iproute2 each agent is its own host: a network namespace and hostname flot-<name>-<n> on a
bridge flotbr<N> (10.213.N.0/24), running units as runc containers.

Flags:
${DIR}  --agents N              number of agents (default 3)
  --agent-metadata K=V,...
                          metadata of the next agent (repeat: agent 1, 2, ...; the rest
                          follow the pattern eu/us, zones, worker/edge, ssd/hdd)
  --name NAME             cluster name in namespace names (default local)
  --network MODE          auto, netns or loopback (default auto)
  --net N                 bridge flotbr<N>, subnet 10.213.N.0/24 (default: first free)
  --etcd-port PORT        etcd client port (default 2379; peer port: --etcd-peer-port, 2380)
  --etcd-members N        1 (default), 3 or 5 etcd members
  --api-ports P1,P2       scheduler API ports on 127.0.0.1 (default 4700,4710)
  --http-ports P1,P2      their HTTP listeners (console, JSON API, metrics) on 127.0.0.1
                          (default 4646,4656; none when --api-ports is given without them)
  --agent-port PORT       agents' Logs port (default 4701 per namespace, 4720+n on loopback)
  --registry-port PORT    image registry port (default 5000; 0: none)
  --driver DRIVER         auto, runc or process (default auto)
  --agent-lease-ttl DUR   agents' lease TTL (default the agent's, 10s)
  --election-ttl DUR      schedulers' election TTL (default the scheduler's, 5s)
  --log-level LEVEL       daemons' log level (default info)
  --no-hints              print where the cluster is, but not the commands to try
${HELP}`,
  down: `Usage: flotilla cluster down [--dir DIR] [--purge]

Stops the agents (their units stop), the schedulers, then etcd; removes the namespaces, the
bridge, containers, cgroups and mounts, and names anything left behind (exit 1).

Flags:
${DIR}  --purge                 also delete the cluster directory (logs, machine ids)
${HELP}`,
  status: `Usage: flotilla cluster status [--dir DIR]

Each process of the cluster, whether it runs (exit 3 when one does not), and for agents
whether their machine is registered; when etcd answers, which scheduler leads and whether
each is in sync.

Flags:
${DIR}${HELP}`,
  'add-agent': `Usage: flotilla cluster add-agent [--dir DIR] [--metadata K=V,...]

Starts one more agent: a machine joining the running cluster.

Flags:
${DIR}  --metadata K=V,...      the new machine's metadata (default: the next in the pattern)
${HELP}`,
  restart: `Usage: flotilla cluster restart NAME [--dir DIR]

Stops one process of the cluster and starts it again with its original command, then waits
until it is ready. NAME is as "flotilla cluster status" shows it: etcd (or etcd-1, ...),
registry, scheduler-1, scheduler-2, agent-1, ...

Flags:
${DIR}${HELP}`,
};
