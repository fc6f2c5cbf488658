import { describe, expect, it } from 'vitest';
import { ServerMetrics } from './server-metrics.js';

// Review: the log writers now drop acked rows they "set aside" (robust, 5c54bed), and the stores
// count them (`quarantinedBatches`), but nothing exports that count: the only trace is one stderr
// line, health does not change, so an operator cannot alert on lost inference logs. The source
// name below is a suggestion (the server would pass `logs.quarantinedBatches`).
describe('review: rows the inference log writer set aside are visible in /metrics', () => {
  it('exports the count of quarantined batches as a counter', async () => {
    const metrics = new ServerMetrics({
      queueDepths: () => [],
      logQueuedRows: () => 0,
      logBytes: () => Promise.resolve(0),
      logState: () => 'open',
      logQuarantinedBatches: () => 3,
    });
    try {
      const text = await metrics.render();
      expect(text).toMatch(/^quoll_inference_log_quarantined_batches_total 3$/m);
    } finally {
      metrics.close();
    }
  });
});
