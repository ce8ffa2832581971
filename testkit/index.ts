/** The test kit: a real etcd per test file, per-test prefixes, polling asserts, factories. */
export { assertEventually, EventuallyTimeoutError, type EventuallyOptions } from './eventually.js';
/** For pacing writers in tests, never for waiting on outcomes (use assertEventually). */
export { setTimeout as sleep } from 'node:timers/promises';
export { EXAMPLES } from './examples.js';
export { etcdForFile, etcdMetric, startEtcd, type EtcdOptions, type EtcdServer } from './etcd.js';
export {
  GIB,
  makeMachine,
  makeUnit,
  unitText,
  type MachineOverrides,
  type SectionValues,
  type UnitTextOptions,
} from './factories.js';
export { freePort, freePorts } from './ports.js';
export { uniquePrefix } from './prefix.js';
export { TurnCounter } from './turns.js';
export { startProxy, type BlockMode, type TcpProxy } from './proxy.js';
export {
  clientTls,
  makePki,
  pkiForFile,
  testPki,
  type CertFiles,
  type ClientTlsPem,
  type TestPki,
} from './tls.js';
export { reflectedServices } from './reflection.js';
export { storedInstances, storedUnit, storedUnits } from './stored-units.js';
