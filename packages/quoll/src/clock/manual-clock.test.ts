import { describe, expect, it } from 'vitest';
import { ManualClock } from './manual-clock.js';
import { systemClock } from './clock.js';

describe('ManualClock', () => {
  it('fires due timers in due order with now() at each due time, including timers set while advancing', async () => {
    const clock = new ManualClock(1000);
    const seen: [string, number][] = [];
    clock.setTimeout(() => seen.push(['b', clock.now()]), 200);
    clock.setTimeout(() => {
      seen.push(['a', clock.now()]);
      clock.setTimeout(() => seen.push(['c', clock.now()]), 50);
    }, 100);
    clock.setTimeout(() => seen.push(['late', clock.now()]), 1000);
    await clock.advance(300);
    expect(seen).toEqual([
      ['a', 1100],
      ['c', 1150],
      ['b', 1200],
    ]);
    expect(clock.now()).toBe(1300);
    expect(clock.pendingTimers).toBe(1);
    expect(clock.nextTimerAt()).toBe(2000);
    expect(clock.hasTimerIn(700)).toBe(true);
    expect(clock.hasTimerIn(699)).toBe(false);
  });

  it('fires timers with the same due time in the order they were set, and not cleared ones', async () => {
    const clock = new ManualClock();
    const seen: number[] = [];
    for (let i = 0; i < 3; i++) clock.setTimeout(() => seen.push(i), 10);
    const h = clock.setTimeout(() => seen.push(99), 10);
    clock.clearTimeout(h);
    await clock.advance(10);
    expect(seen).toEqual([0, 1, 2]);
    expect(clock.pendingTimers).toBe(0);
  });

  it('lets async work started by a timer settle before the next timer fires', async () => {
    const clock = new ManualClock();
    const seen: string[] = [];
    clock.setTimeout(() => {
      void Promise.resolve()
        .then(() => Promise.resolve())
        .then(() => seen.push('async done'));
    }, 10);
    clock.setTimeout(() => seen.push('next timer'), 20);
    await clock.advance(20);
    expect(seen).toEqual(['async done', 'next timer']);
  });
});

describe('systemClock', () => {
  it('fires and clears real timers', async () => {
    let fired = 0;
    const cleared = systemClock.setTimeout(() => fired++, 1);
    systemClock.clearTimeout(cleared);
    await new Promise<void>((resolve) => systemClock.setTimeout(resolve, 5));
    expect(fired).toBe(0);
  });
});
