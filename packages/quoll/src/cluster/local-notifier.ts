import type { ClusterChannel, Notifier } from './notifier.js';

/**
 * {@link Notifier} inside one process: the embedded home, a cluster of one node. Messages are
 * delivered on a later turn of the event loop, as they would arrive from the database.
 */
export class LocalNotifier implements Notifier {
  readonly #handlers = new Map<ClusterChannel, Set<(payload: string) => void>>();

  publish(channel: ClusterChannel, payload: string): Promise<void> {
    const handlers = [...(this.#handlers.get(channel) ?? [])];
    if (handlers.length > 0) {
      setImmediate(() => {
        for (const handler of handlers) handler(payload);
      });
    }
    return Promise.resolve();
  }

  subscribe(channel: ClusterChannel, handler: (payload: string) => void): Promise<() => void> {
    let set = this.#handlers.get(channel);
    if (set === undefined) {
      set = new Set();
      this.#handlers.set(channel, set);
    }
    // Each subscription is its own entry, even for a handler subscribed twice.
    const entry = (payload: string): void => handler(payload);
    set.add(entry);
    return Promise.resolve(() => {
      this.#handlers.get(channel)?.delete(entry);
    });
  }
}
