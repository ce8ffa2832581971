/**
 * The local cluster (`flotilla cluster`) as a library, for the e2e tests and scripts:
 * {@link clusterUp} starts one and resolves once every machine has registered,
 * {@link clusterDown} stops it and removes everything it put on the host, and the record in
 * `<dir>/cluster.json` says which process is which.
 *
 * @example
 *   const record = await clusterUp({ dir, name: 'e2ea', agents: 3, etcdPort, apiPorts });
 *   try { ... } finally { await clusterDown(dir); }
 */
export { cleanMachine, findLeftovers, runcContainers } from './cleanup.js';
export { runCluster, usageHint, EXIT_NOT_RUNNING } from './command.js';
export { clusterDown, stopAll, STOP_GRACE_MS, type DownResult } from './down.js';
export {
  FLOTILLA_BIN,
  REPO_ROOT,
  etcdUrlOf,
  formatMetadata,
  patternMetadata,
  registeredMachines,
} from './launch.js';
export { agentNetwork, networkFor, pickNetworkIndex, SUBNET_PREFIX } from './network.js';
export {
  CLUSTER_USAGE,
  metadataFlag,
  resolveUpOptions,
  UP_DEFAULTS,
  type EtcdMemberPorts,
  type ResolvedUpOptions,
  type UpOptions,
} from './options.js';
export { isRunning, signalRecorded, stopProcess, waitGone } from './proc.js';
export {
  ClusterError,
  etcdEndpoints,
  findProcess,
  readRecord,
  type AgentRecord,
  type EtcdMemberRecord,
  type ClusterErrorCode,
  type ClusterRecord,
  type NetworkRecord,
  type ProcessRecord,
  type ProcessRole,
} from './state.js';
export { clusterStatus, formatStatus, type ClusterStatus, type ProcessStatus } from './status.js';
export { addAgent, clusterUp, requireRecord, restartProcess } from './up.js';
