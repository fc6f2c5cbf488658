import { LocalNotifier } from '../../packages/quoll/src/cluster/index.js';
import type { ClusterChannel, Notifier, SubscribeOptions } from '../../packages/quoll/src/cluster/index.js';

/**
 * A {@link Notifier} whose listening connection can go deaf (messages published meanwhile are
 * lost, as on a PostgreSQL node whose `LISTEN` connection dropped or went half-open) and come
 * back: {@link LossyNotifier.reconnect} calls every subscriber's `onCatchUp`, as the
 * PostgreSQL notifier does once it listens again.
 */
export class LossyNotifier implements Notifier {
  readonly #inner = new LocalNotifier();
  readonly #catchUps = new Set<() => void>();
  /** While true, every message is lost. */
  deaf = false;

  publish(channel: ClusterChannel, payload: string): Promise<void> {
    return this.deaf ? Promise.resolve() : this.#inner.publish(channel, payload);
  }

  async subscribe(
    channel: ClusterChannel,
    handler: (payload: string) => void,
    options: SubscribeOptions = {},
  ): Promise<() => void> {
    const off = await this.#inner.subscribe(channel, handler);
    const onCatchUp = options.onCatchUp;
    const entry = onCatchUp === undefined ? null : (): void => onCatchUp();
    if (entry !== null) this.#catchUps.add(entry);
    return () => {
      off();
      if (entry !== null) this.#catchUps.delete(entry);
    };
  }

  /** How many subscriptions would be told to catch up. */
  get catchUpCount(): number {
    return this.#catchUps.size;
  }

  /** The connection is back: messages flow again and every subscriber catches up. */
  reconnect(): void {
    this.deaf = false;
    for (const catchUp of [...this.#catchUps]) catchUp();
  }
}
