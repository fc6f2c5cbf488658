import { describe, expect, it } from 'vitest';
import { ShutdownSteps } from './shutdown-steps.js';

describe('ShutdownSteps', () => {
  it('closes newest first, runs every step after a failure, and rethrows the first error', async () => {
    const steps = new ShutdownSteps();
    const order: string[] = [];
    steps.push({ what: 'a', close: () => void order.push('a') });
    steps.push({
      what: 'b',
      close: () => {
        order.push('b');
        throw new Error('b failed');
      },
    });
    steps.push({
      what: 'c',
      close: async () => {
        order.push('c');
        throw new Error('c failed');
      },
    });
    await expect(steps.closeAll()).rejects.toThrow('c failed');
    expect(order).toEqual(['c', 'b', 'a']);
    // Every step was removed: closing again does nothing.
    await steps.closeAll();
    expect(order).toEqual(['c', 'b', 'a']);
  });

  it('names a slow step while it is still running, and stops reporting once it is done', async () => {
    const steps = new ShutdownSteps({ reportEveryMs: 20 });
    const reports: string[] = [];
    steps.report = (what, waitedMs) => {
      expect(waitedMs).toBeGreaterThanOrEqual(15);
      reports.push(what);
    };
    let release: () => void = () => undefined;
    steps.push({ what: 'fast', close: () => undefined });
    steps.push({ what: 'inference log writer', close: () => new Promise<void>((r) => (release = r)) });
    const closing = steps.closeAll();
    await new Promise((r) => setTimeout(r, 120));
    expect(reports.length).toBeGreaterThanOrEqual(2);
    expect(new Set(reports)).toEqual(new Set(['inference log writer']));
    release();
    await closing;
    const after = reports.length;
    await new Promise((r) => setTimeout(r, 80));
    expect(reports.length).toBe(after);
  });
});
