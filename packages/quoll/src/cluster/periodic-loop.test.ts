import { describe, expect, it } from 'vitest';
import { ManualClock } from '../clock/index.js';
import { PeriodicLoop } from './periodic-loop.js';

describe('PeriodicLoop', () => {
  it('runs a round at start and then one per interval, never two at once', async () => {
    const clock = new ManualClock(0);
    let running = 0;
    let most = 0;
    let rounds = 0;
    let release: (() => void) | null = null;
    const loop = new PeriodicLoop({
      clock,
      intervalMs: 1_000,
      onError: (err) => {
        throw err;
      },
      step: async () => {
        running++;
        most = Math.max(most, running);
        rounds++;
        await new Promise<void>((resolve) => (release = resolve));
        running--;
      },
    });
    loop.start();
    expect(rounds).toBe(1);
    // Woken while a round runs: one more round follows it, not a second one beside it.
    loop.wake();
    loop.wake();
    expect(rounds).toBe(1);
    release!();
    await new Promise((r) => setImmediate(r));
    expect(rounds).toBe(2);
    release!();
    await new Promise((r) => setImmediate(r));
    expect(clock.pendingTimers).toBe(1);
    await clock.advance(1_000);
    expect(rounds).toBe(3);
    expect(most).toBe(1);
    const stopped = loop.stop();
    // stop() waits for the round in progress.
    let done = false;
    void stopped.then(() => (done = true));
    await new Promise((r) => setImmediate(r));
    expect(done).toBe(false);
    release!();
    await stopped;
    expect(loop.active).toBe(false);
    expect(clock.pendingTimers).toBe(0);
    await clock.advance(10_000);
    expect(rounds).toBe(3);
  });

  it('reports a failed round and goes on', async () => {
    const clock = new ManualClock(0);
    const errors: unknown[] = [];
    let rounds = 0;
    const loop = new PeriodicLoop({
      clock,
      intervalMs: 10,
      onError: (err) => errors.push(err),
      step: async () => {
        rounds++;
        if (rounds === 1) throw new Error('database away');
      },
    });
    loop.start();
    await new Promise((r) => setImmediate(r));
    await clock.advance(10);
    await new Promise((r) => setImmediate(r));
    expect(rounds).toBe(2);
    expect(errors.map(String)).toEqual(['Error: database away']);
    await loop.stop();
    expect(loop.active).toBe(false);
  });
});
