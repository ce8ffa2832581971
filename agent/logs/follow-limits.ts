/**
 * Bounds on follows (`flotctl journal -f`): each holds a stream and polls a file until its
 * client leaves, so an agent serves at most so many at once, and one client address at most
 * a share of them. A request over either bound is refused with what to do, never queued.
 */

/** The client address of a gRPC peer string (`ipv4:10.0.0.1:51234` -> `ipv4:10.0.0.1`). */
export function clientOf(peer: string): string {
  const colon = peer.lastIndexOf(':');
  return colon > 0 && /^\d+$/.test(peer.slice(colon + 1)) ? peer.slice(0, colon) : peer;
}

/** Counts follows in flight, in total and per client. */
export class FollowLimits {
  private total = 0;
  private readonly perClient = new Map<string, number>();

  constructor(
    private readonly maxTotal: number,
    private readonly maxPerClient: number,
  ) {}

  /** Follows in flight now. */
  get active(): number {
    return this.total;
  }

  /**
   * Takes a slot for `peer`: a function that gives it back (call it once), or the refusal's
   * message when a bound is reached.
   */
  take(peer: string): (() => void) | string {
    const client = clientOf(peer);
    const mine = this.perClient.get(client) ?? 0;
    if (mine >= this.maxPerClient) {
      return `${client} already follows ${mine} logs on this agent, the most one client may: end one first`;
    }
    if (this.total >= this.maxTotal) {
      return `this agent already serves ${this.total} follows, the most it serves at once: end one, or read without follow`;
    }
    this.total += 1;
    this.perClient.set(client, mine + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.total -= 1;
      const left = (this.perClient.get(client) ?? 1) - 1;
      if (left <= 0) this.perClient.delete(client);
      else this.perClient.set(client, left);
    };
  }
}
