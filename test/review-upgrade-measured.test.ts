import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';

// Review (review-upgrade): docs/distributed.md's Measured table must say what
// docs/benchmarks.md's record of the 16:30 run says.
describe('review: docs/distributed.md Measured against docs/benchmarks.md', () => {
  it('the count of rounds below 0.9 in the 5 December 16:30 node / embedded run', () => {
    const bench = readFileSync(new URL('../docs/benchmarks.md', import.meta.url), 'utf8').replace(/\s+/g, ' ');
    const rounds = /by measured round ((?:\d\.\d+ ){11}\d\.\d+), median 0\.925/.exec(bench)?.[1];
    expect(rounds).toBeDefined();
    const below = rounds!.split(' ').map(Number).filter((r) => r < 0.9).length;
    const dist = readFileSync(new URL('../docs/distributed.md', import.meta.url), 'utf8');
    const claimed = /(\d+) of 12 rounds below 0\.9/.exec(dist)?.[1];
    expect(Number(claimed)).toBe(below);
  });
});
