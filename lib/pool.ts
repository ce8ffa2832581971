/**
 * One bounded worker pool: `task(0..count-1)` with at most `inFlight` running at once, in
 * index order of start. Used wherever several requests go out together (the leader's fenced
 * transactions, flotctl's split writes, the simulated machines of the benchmarks).
 */

/**
 * Runs `task(i)` for every index below `count`, at most `inFlight` at once, and resolves to
 * their results in index order. On the first failure no further task starts; it rejects with
 * that failure once the running ones settle.
 */
export async function pool<R>(
  count: number,
  inFlight: number,
  task: (index: number) => Promise<R>,
): Promise<R[]> {
  const results: R[] = [];
  let next = 0;
  let failure: { err: unknown } | undefined;
  const worker = async (): Promise<void> => {
    while (failure === undefined && next < count) {
      const i = next++;
      try {
        results[i] = await task(i);
      } catch (err) {
        failure ??= { err };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(inFlight, count)) }, worker));
  if (failure !== undefined) throw failure.err;
  return results;
}
