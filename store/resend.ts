/**
 * Sending a call again when etcd elected a new raft leader while the call waited.
 *
 * Why: an etcd member forwards every write to its raft leader. When that leader dies, a
 * write forwarded to it is lost, and the member (alive, so nothing fails over) holds the
 * request until the client's deadline: measured on a 3-member etcd 3.4, every put sent in the
 * 1.3 s between the leader's death and the next election waited the full 5 s deadline and then
 * failed, while puts sent after the election took 3-30 ms (docs/reliability.md). Nothing on
 * the connection says so. So a call that has not answered after `suspectAfterMs` asks etcd for
 * its raft term (Maintenance.Status, which any member answers on its own); a term newer than
 * the one the call was sent in, with a leader, means an election happened meanwhile, and the
 * call is sent again, at most once per new term. A merely slow etcd keeps its term and leader,
 * so a busy etcd gets no extra writes, only one shared status question per half interval.
 *
 * Only calls that are safe to send twice come here (see `Store.callResending`): reads, puts
 * (the same value again) and transactions whose caller checks the outcome. The attempt left
 * behind keeps its own deadline; whatever it ends with is ignored.
 */
import { StoreError } from './errors.js';

/** What one etcd member says of raft: its term, and the leader it follows (0n: none). */
export interface RaftView {
  readonly term: bigint;
  readonly leader: bigint;
}

/** A call's result and how many times it was sent again. */
export interface Resent<T> {
  readonly value: T;
  readonly resent: number;
}

type Settled<T> = { ok: true; value: T } | { ok: false; error: unknown };

function settle<T>(p: Promise<T>): Promise<Settled<T>> {
  return p.then(
    (value) => ({ ok: true, value }),
    (error: unknown) => ({ ok: false, error }),
  );
}

/** `p`'s outcome, or undefined when `ms` pass first. */
async function within<T>(p: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<undefined>((resolve) => {
    timer = setTimeout(() => resolve(undefined), Math.max(0, ms));
  });
  try {
    return await Promise.race([p, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Watches etcd's raft term for the calls of one store, and re-sends the ones it strands. */
export class Resender {
  /** The newest raft term any answer named; 0n before the first. */
  private term = 0n;
  private asking: Promise<RaftView | undefined> | undefined;
  private answer: { view: RaftView; at: number } | undefined;

  /**
   * @param status asks one member (any) for its raft view, within its own short deadline
   * @param suspectAfterMs how long a call may go unanswered before etcd is asked
   */
  constructor(
    private readonly status: () => Promise<RaftView>,
    private readonly suspectAfterMs: number,
  ) {}

  /** Notes the raft term an answer from etcd carried (every response header has one). */
  saw(term: bigint): void {
    if (term > this.term) this.term = term;
  }

  /**
   * Runs `attempt`, and again each time etcd has a leader of a newer term than the one the
   * running attempt was sent in; resolves or rejects with the first attempt that ends. Once
   * it was sent again, gives up with StoreError `deadline` after `budgetMs` in all; sent once,
   * the attempt's own deadline ends it.
   */
  async run<T>(attempt: () => Promise<T>, budgetMs: number, key?: string): Promise<Resent<T>> {
    const deadline = Date.now() + budgetMs;
    let sentIn = this.term;
    let resent = 0;
    let current = settle(attempt());
    for (;;) {
      const left = deadline - Date.now();
      const wait = resent === 0 ? this.suspectAfterMs : Math.min(this.suspectAfterMs, left);
      const done = await within(current, wait);
      if (done !== undefined) {
        if (done.ok) return { value: done.value, resent };
        throw done.error;
      }
      if (resent > 0 && Date.now() >= deadline) {
        throw new StoreError(
          'deadline',
          `etcd did not answer within ${budgetMs} ms, sent ${resent + 1} times across raft leader changes; retry later`,
          key === undefined ? {} : { key },
        );
      }
      // Asked while the attempt may still end: whichever comes first.
      const view = await Promise.race([this.view(), current.then(() => undefined)]);
      if (view === undefined) continue;
      if (sentIn === 0n) {
        sentIn = view.term; // no term known when it was sent: this one is the baseline
        continue;
      }
      if (view.term > sentIn && view.leader !== 0n) {
        sentIn = view.term;
        resent += 1;
        current = settle(attempt());
      }
    }
  }

  /**
   * etcd's raft view: one question in flight at a time, and an answer younger than half the
   * suspicion interval shared, so many slow calls cost one status call, not one each.
   */
  private view(): Promise<RaftView | undefined> {
    const fresh = this.answer;
    if (fresh !== undefined && Date.now() - fresh.at < this.suspectAfterMs / 2) {
      return Promise.resolve(fresh.view);
    }
    this.asking ??= this.status()
      .then((view) => {
        this.saw(view.term);
        this.answer = { view, at: Date.now() };
        return view;
      })
      .catch(() => undefined)
      .finally(() => (this.asking = undefined));
    return this.asking;
  }
}
