/**
 * Counts turns of the event loop, one `setImmediate` each, for tests that check work is
 * spread over turns: read `turn` where the work happens, `stop()` when done.
 */
export class TurnCounter {
  turn = 0;
  private ticking = true;

  constructor() {
    const tick = (): void => {
      this.turn += 1;
      if (this.ticking) setImmediate(tick);
    };
    setImmediate(tick);
  }

  stop(): void {
    this.ticking = false;
  }
}
