/**
 * Typed listener sets for store/'s event sources (caches, presences). Listeners run
 * synchronously in registration order, so events are seen in the order they happened. A
 * listener that throws is a bug in the consumer: the error is rethrown asynchronously (an
 * uncaught exception) rather than silently breaking the source.
 */

/** Removes the listener it was returned for. Idempotent. */
export type Unsubscribe = () => void;

/** A set of listeners for events of type `E`. */
export class Listeners<E> {
  private readonly fns = new Set<(event: E) => void>();

  /** Adds `fn`; returns the function that removes it. */
  on(fn: (event: E) => void): Unsubscribe {
    const wrapper = (event: E): void => fn(event);
    this.fns.add(wrapper);
    return () => {
      this.fns.delete(wrapper);
    };
  }

  /** Calls every listener with `event`. */
  emit(event: E): void {
    for (const fn of [...this.fns]) {
      try {
        fn(event);
      } catch (err) {
        setImmediate(() => {
          throw err;
        });
      }
    }
  }

  get size(): number {
    return this.fns.size;
  }

  clear(): void {
    this.fns.clear();
  }
}

/**
 * An interruptible pause: `sleep(ms)` resolves after `ms` or as soon as `wake()` is called,
 * so loops react at once to close() or to news that their lease is gone.
 */
export class Waker {
  private pending: (() => void) | undefined;
  private woken = false;

  sleep(ms: number): Promise<void> {
    if (this.woken) {
      this.woken = false;
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        if (this.pending === done) this.pending = undefined;
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.pending = done;
    });
  }

  /** Ends the current sleep, or makes the next one return at once. */
  wake(): void {
    if (this.pending !== undefined) this.pending();
    else this.woken = true;
  }
}
