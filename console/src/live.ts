/**
 * Keeps the page's model live: lists machines and units (paged, as the API serves them), then
 * follows the Server-Sent Events stream (`batch` messages) from the listing's revision on.
 * The browser's EventSource resumes a dropped stream with Last-Event-ID (the last revision
 * seen), so nothing is missed or seen twice; when the server says the revision is gone
 * (`reset`: the replica no longer holds those changes), the page lists again. Reservations are not
 * in the events: the machines are listed again after placements changed, at most every
 * {@link MACHINES_REFRESH_MS}, so an idle page costs the scheduler nothing.
 */
import { call, enc } from './api.js';
import type { ClusterModel } from './model.js';
import type { EventJson, ListMachinesJson, ListUnitsJson } from './types.js';

/** Units per listing page (the API's largest). */
export const UNITS_PAGE = 10_000;
export const MACHINES_PAGE = 5_000;
/** Reservations are refreshed at most this often while placements change. */
export const MACHINES_REFRESH_MS = 5_000;
/** Pages a listing reads at most (1,000,000 units): a bound, not an expectation. */
const MAX_PAGES = 100;

export type LiveStatus = 'loading' | 'live' | 'reconnecting' | 'stopped';

export class Live {
  status: LiveStatus = 'loading';
  /** Set by a listing or stream failure, cleared once live again. */
  problem = '';
  private source: EventSource | undefined;
  private refreshTimer: ReturnType<typeof setInterval> | undefined;
  private stopped = false;

  constructor(
    private readonly model: ClusterModel,
    private readonly onStatus: () => void = () => undefined,
    /** Called once the first full listing is in the model. */
    private readonly onListed: () => void = () => undefined,
  ) {}

  /** Lists and starts following; resolves once the first full listing is in the model. */
  async start(): Promise<void> {
    await this.list();
    this.onListed();
    this.follow();
    this.refreshTimer = setInterval(() => void this.refreshMachines(), MACHINES_REFRESH_MS);
  }

  stop(): void {
    this.stopped = true;
    this.status = 'stopped';
    this.source?.close();
    if (this.refreshTimer !== undefined) clearInterval(this.refreshTimer);
  }

  private setStatus(s: LiveStatus, problem = ''): void {
    this.status = s;
    this.problem = problem;
    this.onStatus();
  }

  private async list(): Promise<void> {
    this.setStatus('loading');
    const model = this.model;
    model.clear();
    await this.listMachines();
    let token = '';
    let first = Number.MAX_SAFE_INTEGER;
    for (let page = 0; page < MAX_PAGES; page += 1) {
      const res = await call<ListUnitsJson>(
        'GET',
        `/api/v1/units?pageSize=${UNITS_PAGE}${token === '' ? '' : `&pageToken=${enc(token)}`}`,
      );
      model.addUnits(res.units ?? []);
      const rev = Number(res.revision ?? 0);
      if (rev > 0 && rev < first) first = rev;
      model.notify();
      token = res.nextPageToken ?? '';
      if (token === '') break;
    }
    // Events from the oldest page's revision on: replaying a change a later page already
    // showed is harmless, since every event carries the whole record.
    model.revision = first === Number.MAX_SAFE_INTEGER ? 0 : first;
    model.placementsChanged = false;
  }

  private async listMachines(): Promise<void> {
    let token = '';
    for (let page = 0; page < MAX_PAGES; page += 1) {
      const res = await call<ListMachinesJson>(
        'GET',
        `/api/v1/machines?pageSize=${MACHINES_PAGE}${token === '' ? '' : `&pageToken=${enc(token)}`}`,
      );
      this.model.addMachines(res.machines ?? []);
      token = res.nextPageToken ?? '';
      if (token === '') break;
    }
  }

  private async refreshMachines(): Promise<void> {
    if (!this.model.placementsChanged || this.status !== 'live') return;
    this.model.placementsChanged = false;
    try {
      await this.listMachines();
      this.model.notify();
    } catch {
      this.model.placementsChanged = true;
    }
  }

  private follow(): void {
    // `since` is the revision seen in full: the stream sends every change after it.
    const es = new EventSource(`/api/v1/events?since=${this.model.revision}`);
    this.source = es;
    es.onopen = () => this.setStatus('live');
    es.addEventListener('batch', (e: MessageEvent<string>) => {
      let events: readonly EventJson[];
      try {
        events = (JSON.parse(e.data) as { events?: EventJson[] }).events ?? [];
      } catch {
        return;
      }
      this.model.apply(events);
      this.model.notify();
    });
    es.onerror = () => {
      if (this.stopped) return;
      if (es.readyState === EventSource.CLOSED) {
        // The server refused the stream (e.g. 401): list again after a pause.
        this.setStatus('reconnecting', 'the event stream closed; listing again');
        setTimeout(() => void this.restart(), 3_000);
      } else this.setStatus('reconnecting', 'the event stream dropped; resuming');
    };
    // The replica no longer holds the changes after our revision: list again.
    es.addEventListener('reset', () => {
      es.close();
      void this.restart();
    });
  }

  private async restart(): Promise<void> {
    if (this.stopped) return;
    this.source?.close();
    try {
      await this.list();
      this.follow();
    } catch (err) {
      this.setStatus('reconnecting', String(err));
      setTimeout(() => void this.restart(), 5_000);
    }
  }
}
