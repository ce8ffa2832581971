/**
 * The verb table: every verb's name and one-line summary, and how to load its module. Beside
 * main.ts on the top floor of cli/: it is the one place that imports the verbs, each with a
 * literal `import()` (so tsc follows it) run only when that verb is asked for. `flotctl --help`
 * and completing a verb's name read this table alone, without loading gRPC or the generated
 * proto code that the verbs reach the API through (about 100 ms of a start; docs/benchmarks.md).
 *
 * A summary here is the verb's own `summary`; test/cli/verb-table.test.ts holds them equal.
 */
import type { Verb, VerbEntry } from './verb.js';

function entry(name: string, summary: string, load: () => Promise<Verb>): VerbEntry {
  return { name, summary, load };
}

/** Every verb, in the order `flotctl --help` lists them (fleetctl's first, then Flotilla's). */
export const VERB_TABLE: readonly VerbEntry[] = [
  entry('submit', 'submit unit files to the cluster (all or nothing)', async () => {
    return (await import('./verbs/files.js')).submitVerb;
  }),
  entry('load', 'place units on machines without starting them', async () => {
    return (await import('./verbs/states.js')).loadVerb;
  }),
  entry('start', 'start units, submitting and placing them first if needed', async () => {
    return (await import('./verbs/states.js')).startVerb;
  }),
  entry('stop', 'stop units, keeping them placed', async () => {
    return (await import('./verbs/states.js')).stopVerb;
  }),
  entry('unload', 'stop units and take them off their machines', async () => {
    return (await import('./verbs/states.js')).unloadVerb;
  }),
  entry('destroy', 'remove units from the cluster and stop them', async () => {
    return (await import('./verbs/files.js')).destroyVerb;
  }),
  entry('cat', 'print the unit file of a submitted unit', async () => {
    return (await import('./verbs/files.js')).catVerb;
  }),
  entry(
    'list-units',
    'list the units that run or wait for a machine, with their state',
    async () => {
      return (await import('./verbs/list.js')).listUnitsVerb;
    },
  ),
  entry('list-unit-files', 'list every submitted unit file, loaded or not', async () => {
    return (await import('./verbs/list.js')).listUnitFilesVerb;
  }),
  entry(
    'list-machines',
    'list the machines of the cluster with their reserved and total capacity',
    async () => (await import('./verbs/machines.js')).listMachinesVerb,
  ),
  entry(
    'status',
    "show units' state, placement, pending reasons and last log lines",
    async () => (await import('./verbs/status.js')).statusVerb,
  ),
  entry('journal', "print a unit's output, optionally following it", async () => {
    return (await import('./verbs/status.js')).journalVerb;
  }),
  entry('verify', 'check unit files offline and report every problem with its line', async () => {
    return (await import('./verbs/verify.js')).verifyVerb;
  }),
  entry('scale', 'run exactly N instances of a template', async () => {
    return (await import('./verbs/scale.js')).scaleVerb;
  }),
  entry('update', "replace a template's file and roll its instances, N at a time", async () => {
    return (await import('./verbs/rollout.js')).updateVerb;
  }),
  entry(
    'rollback',
    'return a template (or unit) to the file its last rollout replaced',
    async () => (await import('./verbs/rollout.js')).rollbackVerb,
  ),
  entry('rollout', "show a template's rollout: flotctl rollout status UNIT", async () => {
    return (await import('./verbs/rollout.js')).rolloutVerb;
  }),
  entry('watch', "print the cluster's changes live, one line each", async () => {
    return (await import('./verbs/watch.js')).watchVerb;
  }),
  entry('plan', 'show where units would be placed, without changing anything', async () => {
    return (await import('./verbs/plan.js')).planVerb;
  }),
  entry('drain', 'move units off a machine and keep new ones away', async () => {
    return (await import('./verbs/machines.js')).drainMachineVerb;
  }),
  entry('undrain', 'let a drained machine take units again', async () => {
    return (await import('./verbs/machines.js')).undrainMachineVerb;
  }),
  entry(
    'resume-rescheduling',
    'move the units of lost machines now, ending a mass-loss pause',
    async () => (await import('./verbs/machines.js')).resumeReschedulingVerb,
  ),
  entry(
    'list-schedulers',
    'list the scheduler replicas, which one leads and whether each is in sync',
    async () => (await import('./verbs/schedulers.js')).listSchedulersVerb,
  ),
  entry(
    'list-services',
    'list the services, with healthy/total endpoints, published port and tags',
    async () => (await import('./verbs/services.js')).listServicesVerb,
  ),
  entry(
    'endpoints',
    "list a service's endpoints: unit, machine, address:port, health, tags",
    async () => (await import('./verbs/endpoints.js')).endpointsVerb,
  ),
  entry(
    'render',
    "render a template (nginx, HAProxy...) with the services' endpoints, on every change",
    async () => (await import('./verbs/render.js')).renderVerb,
  ),
  entry(
    'secret',
    'create, list and remove secrets, sealed in etcd, that units name with Secret=',
    async () => (await import('./verbs/secrets.js')).secretVerb,
  ),
  entry('completion', 'print a shell completion script (bash, zsh or fish)', async () => {
    return (await import('./verbs/completion.js')).completionVerbs(() => VERB_TABLE)[0];
  }),
  entry(
    'version',
    'print the version of flotctl and the commit it was built from',
    async () => (await import('./verbs/version.js')).versionVerb,
  ),
];

/** Verbs flotctl runs but does not list: the completion scripts' helper. */
export const HIDDEN_VERB_TABLE: readonly VerbEntry[] = [
  entry(
    '__complete',
    'candidates for shell completion (used by the completion scripts)',
    async () => (await import('./verbs/completion.js')).completionVerbs(() => VERB_TABLE)[1],
  ),
];
