/**
 * The placement planner's public surface. The scheduler daemon needs only `plan`, the types,
 * and `applyPlan` when it wants the placement set a plan leads to (e.g. for `flotctl plan`);
 * the API's admission asks `placeInOrder` how many of a template's instances fit now.
 */
export { applyPlan, plan, planSteps } from './planner.js';
export { CHEAP_ITEMS, runToEnd, type Steps } from './steps.js';
export { placeInOrder, placeInOrderSteps, type Capacity } from './capacity.js';
export { FEASIBILITY_CHAIN, summarize } from './chain.js';
export { formatBytes, type FeasibilityChecker } from './checker.js';
export {
  DEFAULT_PORT_RANGE,
  fillPlanOptions,
  type DeferredMove,
  type Displacement,
  type PlaceDecision,
  type Plan,
  type PlanOptions,
  type PlannedPort,
  type PortChange,
  type PortRange,
  type PortWanted,
  type PlacementReason,
  type PlannerMachine,
  type PlannerUnit,
  type ResolvedPlanOptions,
  type Snapshot,
  type UnplaceDecision,
  type UnplaceWhy,
  type Unscheduled,
} from './types.js';
