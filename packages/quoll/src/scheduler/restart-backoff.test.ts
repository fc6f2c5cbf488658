import { describe, expect, it } from 'vitest';
import { DEFAULT_BACKOFF, RestartBackoff } from './restart-backoff.js';

describe('RestartBackoff', () => {
  it('doubles the delay after each fast exit, capped at maxMs', () => {
    const b = new RestartBackoff();
    const delays = Array.from({ length: 9 }, () => b.record('t', { livedMs: 10, failed: false }).delayMs);
    expect(delays).toEqual([1000, 2000, 4000, 8000, 16000, 32000, 60000, 60000, 60000]);
  });

  it('resets after a run that lived long enough', () => {
    const b = new RestartBackoff();
    for (let i = 0; i < 4; i++) b.record('t', { livedMs: 10, failed: true });
    expect(b.record('t', { livedMs: DEFAULT_BACKOFF.healthyAfterMs, failed: true })).toEqual({
      delayMs: 1000,
      crashLoop: null,
    });
    expect(b.record('t', { livedMs: 10, failed: true }).delayMs).toBe(1000);
  });

  it('flags a crash loop after N fast failures in a row; a fast success breaks the streak', () => {
    const b = new RestartBackoff({ crashLoopAfter: 3 });
    expect(b.record('t', { livedMs: 5, failed: true }).crashLoop).toBeNull();
    expect(b.record('t', { livedMs: 5, failed: true }).crashLoop).toBeNull();
    expect(b.record('t', { livedMs: 5, failed: true }).crashLoop).toMatch(
      /^crash loop: the last 3 runs failed within 60 s/,
    );
    expect(b.record('t', { livedMs: 5, failed: false }).crashLoop).toBeNull();
    expect(b.record('t', { livedMs: 5, failed: true }).crashLoop).toBeNull();
  });

  it('keeps state per task and forgets a task', () => {
    const b = new RestartBackoff();
    b.record('a', { livedMs: 1, failed: true });
    b.record('a', { livedMs: 1, failed: true });
    expect(b.record('b', { livedMs: 1, failed: true }).delayMs).toBe(1000);
    b.forget('a');
    expect(b.record('a', { livedMs: 1, failed: true }).delayMs).toBe(1000);
  });
});
