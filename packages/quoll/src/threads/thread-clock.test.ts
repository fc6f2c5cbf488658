import { availableParallelism } from 'node:os';
import { performance } from 'node:perf_hooks';
import { Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { callingThreadClock, threadClock } from './thread-clock.js';

/** Keeps this thread computing for `ms` of wall time. */
function spin(ms: number): number {
  const until = performance.now() + ms;
  let n = 0;
  while (performance.now() < until) n++;
  return n;
}

/** Threads that compute for `ms`, one more than this machine has CPUs: every thread then waits its turns. */
function crowd(ms: number): Promise<unknown>[] {
  return Array.from({ length: availableParallelism() + 1 }, () => {
    const worker = new Worker(
      `const until = performance.now() + ${ms}; let n = 0; while (performance.now() < until) n++;`,
      { eval: true },
    );
    return new Promise((resolve) => worker.once('exit', resolve));
  });
}

describe('threadClock', () => {
  it.runIf(process.platform === 'linux')(
    'leaves out the time this thread waits for a CPU while other threads crowd them (Linux)',
    async () => {
      const clock = threadClock();
      try {
        expect(['cpu', 'unqueued']).toContain(clock.kind);
        const crowded = crowd(600);
        // Let the crowd start, then time 300 ms of wall time among it.
        spin(100);
        const wallStarted = performance.now();
        const started = clock.now();
        spin(300);
        const ran = (clock.now() - started) / 1000;
        const wall = performance.now() - wallStarted;
        await Promise.all(crowded);
        // At least n + 2 threads computing on n CPUs: this one ran at most (n / (n + 2)) of the
        // time, 0.5 on two CPUs; far less than the wall time, and never more.
        console.log(`threadClock (${clock.kind}): ${ran.toFixed(1)} ms of ${wall.toFixed(1)} ms wall`);
        expect(ran).toBeLessThan(wall * 0.9);
        expect(ran).toBeGreaterThan(0);
      } finally {
        clock.close();
      }
    },
  );

  it.runIf(process.platform === 'linux')(
    'never runs backwards while other threads crowd the CPUs, however often it is read (Linux)',
    async () => {
      const clock = threadClock();
      try {
        const crowded = crowd(800);
        spin(50);
        // Readings back to back for 500 ms: a preemption between the wall time and the wait it
        // is corrected by must not make a later reading smaller than an earlier one.
        const until = performance.now() + 500;
        let last = clock.now();
        let backwards = 0;
        let readings = 0;
        while (performance.now() < until) {
          const now = clock.now();
          if (now < last) backwards++;
          last = now;
          readings++;
        }
        await Promise.all(crowded);
        console.log(`threadClock (${clock.kind}): ${readings} readings, ${backwards} backwards`);
        expect(backwards).toBe(0);
      } finally {
        clock.close();
      }
    },
  );

  it('counts on as the thread computes; close is idempotent', () => {
    const clock = threadClock();
    const first = clock.now();
    spin(5);
    expect(clock.now()).toBeGreaterThan(first);
    clock.close();
    clock.close();
  });

  it('callingThreadClock: one clock per thread, kept, of the kind threadClock gives', () => {
    const clock = callingThreadClock();
    expect(callingThreadClock()).toBe(clock);
    const fresh = threadClock();
    expect(clock.kind).toBe(fresh.kind);
    fresh.close();
    const first = clock.now();
    spin(2);
    expect(clock.now()).toBeGreaterThan(first);
  });
});
