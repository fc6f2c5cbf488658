import { describe, expect, it } from 'vitest';
import { StatusCounts } from './status-counts.js';

describe('StatusCounts', () => {
  it('counts each status apart, in the order first seen, and sums the errors', () => {
    const counts = new StatusCounts();
    for (const status of [200, 200, 404, 200, 503, 404, 200, 201, 503, 503, 500]) counts.add(status);
    expect([...counts.entries()]).toEqual([
      [200, 4],
      [404, 2],
      [503, 3],
      [201, 1],
      [500, 1],
    ]);
    expect(counts.errors()).toBe(6);
  });

  it('is empty before the first answer', () => {
    const counts = new StatusCounts();
    expect([...counts.entries()]).toEqual([]);
    expect(counts.errors()).toBe(0);
  });
});
