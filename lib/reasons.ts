/**
 * How a placement reason reads. The planner phrases each reason for a count of machines
 * (`lack region=us`, `already run 2 instances of web@.service`); these put it after its count
 * (`3 lack region=us`, `1 lacks region=us`) or about one machine, the same in the scheduler's
 * summaries and in what flotctl prints from the reasons it is given.
 */

const SINGULAR: Readonly<Record<string, string>> = {
  are: 'is',
  have: 'has',
  do: 'does',
  match: 'matches',
  lack: 'lacks',
  conflict: 'conflicts',
  run: 'runs',
  already: 'already',
  would: 'would',
};

/** `3 lack region=us`, `1 lacks region=us`: a reason after its count of machines. */
export function countedReason(machines: number, reason: string): string {
  return `${machines} ${machines === 1 ? singularReason(reason) : reason}`;
}

/**
 * A reason's verbs for one machine: the first (`are` -> `is`, `already run` -> `already
 * runs`) and a second after ` and ` (`are too small for 8 CPUs and lack ...` -> `and lacks`).
 */
export function singularReason(reason: string): string {
  const space = reason.indexOf(' ');
  const verb = space < 0 ? reason : reason.slice(0, space);
  let rest = space < 0 ? '' : reason.slice(space);
  if (verb === 'already' && rest.startsWith(' run ')) rest = ` runs ${rest.slice(5)}`;
  rest = rest.replace(/ and lack (?=.* free$)/, ' and lacks ');
  return `${SINGULAR[verb] ?? verb}${rest}`;
}
