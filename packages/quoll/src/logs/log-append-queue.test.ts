import { describe, expect, it } from 'vitest';
import { LogAppendQueue } from './log-append-queue.js';

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
});
