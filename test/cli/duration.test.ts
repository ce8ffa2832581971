/**
 * How durations read in flotctl's lines and the agent's messages: `250ms`, `5s`, `1m30s`,
 * never `30000 ms`.
 */
import test from 'ava';
import { formatDuration } from '../../lib/duration.js';

test('durations read as 250ms, 5s, 1.5s, 30s, 1m, 1m30s, 1h5m, never in plain milliseconds', (t) => {
  const cases: [number, string][] = [
    [0, '0s'],
    [250, '250ms'],
    [999, '999ms'],
    [1000, '1s'],
    [1500, '1.5s'],
    [5000, '5s'],
    [30_000, '30s'],
    [59_990, '1m'],
    [60_000, '1m'],
    [90_000, '1m30s'],
    [3_600_000, '1h'],
    [3_900_000, '1h5m'],
    [3_661_000, '1h1m1s'],
  ];
  for (const [ms, text] of cases) t.is(formatDuration(ms), text, `${ms} ms`);
});
