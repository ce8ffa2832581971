/**
 * How every duration reads in what Flotilla prints (flotctl's lines, the agent's messages):
 * `250ms`, `5s`, `1.5s`, `1m30s`, `2h`, as the flags that take them are written; never
 * `30000 ms`.
 */

/** `ms` as `250ms`, `5s`, `1.5s`, `1m30s`, `1h5m`, `2h`; `0s` for 0. */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms) || ms <= 0) return '0s';
  if (ms < 1000) return `${Math.round(ms)}ms`;
  if (ms < 60_000) {
    const s = Math.round(ms / 100) / 10;
    return s >= 60 ? '1m' : `${s}s`;
  }
  const total = Math.round(ms / 1000);
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = total % 60;
  return `${h > 0 ? `${h}h` : ''}${m > 0 ? `${m}m` : ''}${s > 0 ? `${s}s` : ''}`;
}
