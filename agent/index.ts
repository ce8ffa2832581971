/**
 * The agent's unit runtime: what the agent daemon (registration, reconcile loop, state
 * reports, Logs service) builds on. Import from here.
 */
export {
  UnitManager,
  type UnitManagerOptions,
  type AdoptedUnit,
  type StateListener,
} from './units/unit-manager.js';
export {
  Supervisor,
  SUPERVISOR_DEFAULTS,
  type SupervisorTimings,
  type SupervisedUnit,
} from './units/supervisor/supervisor.js';
export {
  LogStore,
  LOG_DEFAULTS,
  type LogStoreOptions,
  type FollowOptions,
} from './logs/log-store.js';
export * from './runtime/index.js';
