import type { ClusterChannel, Notifier, SubscribeOptions } from '../../cluster/index.js';
import type { PostgresDatabase } from './postgres-database.js';

/**
 * {@link Notifier} over PostgreSQL `NOTIFY`/`LISTEN`: messages go through the database to
 * every node's one listening connection (shared with the run-log followers), which is
 * re-opened with backoff when it drops or stops answering its liveness check; subscribers'
 * `onCatchUp` is called once it listens again.
 */
export class PostgresNotifier implements Notifier {
  constructor(private readonly db: PostgresDatabase) {}

  async publish(channel: ClusterChannel, payload: string): Promise<void> {
    await this.db.run('SELECT pg_notify($1, $2)', [channel, payload]);
  }

  subscribe(
    channel: ClusterChannel,
    handler: (payload: string) => void,
    options: SubscribeOptions = {},
  ): Promise<() => void> {
    return this.db.listen(channel, handler, options);
  }
}
