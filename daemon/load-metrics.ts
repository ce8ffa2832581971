/**
 * How loaded a daemon is, as Prometheus sees it: the main thread's event-loop delay and the
 * lateness of its lease renewals. A daemon that slows down under load shows it here before
 * anything breaks; one whose lease renewals run late is about to lose its machine or its
 * leadership (they run in the store's lease worker, so they should stay on time whatever the
 * main thread does: that is what the lateness histogram checks).
 *
 * The delay histogram is cumulative (never reset by a scrape), so the delay over any window
 * is the difference of two scrapes: the scale benchmark reads each daemon's p99 during a
 * scale that way. prom-client's default `nodejs_eventloop_lag_p50/p99/max_seconds` gauges
 * sit beside it (over the time since the previous scrape).
 */
import { Histogram, type Registry } from 'prom-client';
import type { Store } from '../store/index.js';

/** Buckets of both histograms, seconds: where 100 ms (the target) sits matters most. */
export const DELAY_BUCKETS = [
  0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1, 2.5, 5, 10,
];

/** How often the main thread's delay is sampled. */
export const SAMPLE_MS = 50;

/**
 * Registers `<prefix>event_loop_delay_seconds`, `<prefix>lease_renewal_lateness_seconds` and
 * `<prefix>lease_renewal_round_trip_seconds` on `registry` and feeds them; returns the
 * function that stops doing so.
 */
export function watchLoad(registry: Registry, prefix: string, store: Store): () => void {
  const registers = [registry];
  const delay = new Histogram({
    name: `${prefix}event_loop_delay_seconds`,
    help: `how late a ${SAMPLE_MS} ms timer on the main thread fires: the longest task running when it was due`,
    buckets: DELAY_BUCKETS,
    registers,
  });
  const lateness = new Histogram({
    name: `${prefix}lease_renewal_lateness_seconds`,
    help: "how late a lease renewal's timer fired in the lease worker (machine, election, replica leases)",
    buckets: DELAY_BUCKETS,
    registers,
  });
  const roundTrip = new Histogram({
    name: `${prefix}lease_renewal_round_trip_seconds`,
    help: 'from sending a lease renewal to etcd confirming it, on the lease connection',
    buckets: DELAY_BUCKETS,
    registers,
  });
  let timer: NodeJS.Timeout | undefined;
  let due = 0;
  const sample = (): void => {
    const now = performance.now();
    if (due > 0) delay.observe(Math.max(0, now - due) / 1000);
    due = now + SAMPLE_MS;
    timer = setTimeout(sample, SAMPLE_MS);
    timer.unref();
  };
  sample();
  const off = store.leases.onRenewal((r) => {
    lateness.observe(r.lateMs / 1000);
    roundTrip.observe(r.rttMs / 1000);
  });
  return () => {
    clearTimeout(timer);
    off();
  };
}
