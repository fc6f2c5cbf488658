import { describe, expect, it } from 'vitest';
import { ManualClock } from '../clock/index.js';
import { MasterKeyError } from './master-key.js';
import { ReturnKeyCheck } from './return-key-check.js';

const flush = async (): Promise<void> => {
  for (let i = 0; i < 5; i++) await Promise.resolve();
};

function harness(outcomes: (Error | null)[]) {
  const clock = new ManualClock();
  const refused: MasterKeyError[] = [];
  const retried: unknown[] = [];
  let calls = 0;
  let admitted = 0;
  const recheck = new ReturnKeyCheck({
    check: async () => {
      const outcome = outcomes[calls++] ?? null;
      if (outcome !== null) throw outcome;
    },
    onRefused: (err) => refused.push(err),
    onRetry: (err) => retried.push(err),
    onAdmitted: () => admitted++,
    retryMs: 1_000,
    clock,
  });
  return { clock, recheck, refused, retried, calls: () => calls, admitted: () => admitted };
}

const mismatch = new MasterKeyError('master_key_mismatch', 'another live node seals with key id k2');

describe('ReturnKeyCheck', () => {
  it('a node whose keys still agree is checked once and left running', async () => {
    const h = harness([null]);
    h.recheck.run();
    await flush();
    expect(h.calls()).toBe(1);
    expect(h.refused).toEqual([]);
    expect(h.recheck.running).toBe(false);
    // The owner is told, and beats at once (its report is then no newer than its last sight).
    expect(h.admitted()).toBe(1);
  });

  it('a refusal is told once, and no later return checks again', async () => {
    const h = harness([mismatch, null]);
    h.recheck.run();
    await flush();
    expect(h.refused).toEqual([mismatch]);
    expect(h.admitted()).toBe(0);
    h.recheck.run();
    await flush();
    expect(h.calls()).toBe(1);
  });

  it('a check that could not run is retried after retryMs until it runs, then refuses', async () => {
    const down = new Error('connection refused');
    const h = harness([down, down, mismatch]);
    h.recheck.run();
    await flush();
    expect(h.retried).toEqual([down]);
    expect(h.calls()).toBe(1);
    await h.clock.advance(999);
    await flush();
    expect(h.calls()).toBe(1);
    await h.clock.advance(1);
    await flush();
    expect(h.calls()).toBe(2);
    await h.clock.advance(1_000);
    await flush();
    expect(h.calls()).toBe(3);
    expect(h.refused).toEqual([mismatch]);
    expect(h.clock.pendingTimers).toBe(0);
  });

  it('a return during a check is checked again after it (nodes may have started meanwhile)', async () => {
    let release: () => void = () => undefined;
    let calls = 0;
    const recheck = new ReturnKeyCheck({
      check: () => {
        calls++;
        return calls === 1 ? new Promise<void>((resolve) => (release = resolve)) : Promise.resolve();
      },
      onRefused: () => undefined,
      onRetry: () => undefined,
      retryMs: 1_000,
      clock: new ManualClock(),
    });
    recheck.run();
    recheck.run();
    recheck.run();
    expect(calls).toBe(1);
    release();
    await flush();
    expect(calls).toBe(2);
    expect(recheck.running).toBe(false);
  });

  it('stop() cancels a retry waiting on its timer and nothing runs after it', async () => {
    const h = harness([new Error('down'), null]);
    h.recheck.run();
    await flush();
    expect(h.clock.pendingTimers).toBe(1);
    await h.recheck.stop();
    expect(h.clock.pendingTimers).toBe(0);
    expect(h.recheck.running).toBe(false);
    await h.clock.advance(10_000);
    h.recheck.run();
    await flush();
    expect(h.calls()).toBe(1);
  });

  it("no check runs while another process holds the node id: it would record this node's keys under that process's id", async () => {
    const clock = new ManualClock();
    let holds = true;
    let calls = 0;
    const down = new Error('connection refused');
    const recheck = new ReturnKeyCheck({
      check: () => {
        calls++;
        return calls === 1 ? Promise.reject(down) : Promise.resolve();
      },
      holdsId: () => holds,
      onRefused: () => undefined,
      onRetry: () => undefined,
      retryMs: 1_000,
      clock,
    });
    recheck.run();
    await flush();
    expect(calls).toBe(1);
    // While the retry waits, the node stalls again and another process takes its id.
    holds = false;
    await clock.advance(1_000);
    await flush();
    expect(calls).toBe(1);
    expect(recheck.running).toBe(false);
    expect(clock.pendingTimers).toBe(0);
    // A return taken while the id is elsewhere is not checked either; once it holds it again, it is.
    recheck.run();
    await flush();
    expect(calls).toBe(1);
    holds = true;
    recheck.run();
    await flush();
    expect(calls).toBe(2);
  });
});
