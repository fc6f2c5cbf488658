import { describe, expect, it } from 'vitest';
import { LOG_APPEND_ADMITTED, LogAppendQueue } from './log-append-queue.js';

describe('LogAppendQueue', () => {
  it('rejects a row count that is not a whole number, and later appends are admitted as before', async () => {
    const queue = new LogAppendQueue(100);
    await queue.push(1, [], 1, 0);
    for (const rows of [NaN, 2.5, -1, Infinity])
      await expect(queue.push(1, [], rows, 0)).rejects.toThrow(RangeError);
    expect(queue.queuedRows).toBe(1);
    await queue.push(1, [], 2, 0);
    expect(queue.queuedRows).toBe(3);
  });

  it('answers an append admitted at once with LOG_APPEND_ADMITTED (settled: nothing to wait for), one that waits for room with its own promise', async () => {
    const queue = new LogAppendQueue(3);
    expect(queue.push(1, [], 2, 0)).toBe(LOG_APPEND_ADMITTED);
    let admitted = false;
    const waiting = queue.push(1, [], 2, 0).then(() => (admitted = true));
    expect(waiting).not.toBe(LOG_APPEND_ADMITTED);
    await Promise.resolve();
    expect(admitted).toBe(false);
    queue.takeAll();
    await waiting;
    expect(admitted).toBe(true);
    await expect(LOG_APPEND_ADMITTED).resolves.toBeUndefined();
  });
});
