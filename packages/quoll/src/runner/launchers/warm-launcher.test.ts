import { mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { LaunchedProcess, LaunchSpec } from '../launch-spec.js';
import { NO_LIMITS } from '../resource-limits.js';
import { NodeRuntime } from '../runtimes/node-runtime.js';
import { DirectLauncher } from './direct-launcher.js';
import { WarmLauncher } from './warm-launcher.js';

let dir: string;
let launchers: WarmLauncher[];
const node = new NodeRuntime();

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'quoll-warm-'));
  launchers = [];
});
afterEach(async () => {
  for (const l of launchers) await l.stop();
  rmSync(dir, { recursive: true, force: true });
});

function warm(size = 1): WarmLauncher {
  const l = new WarmLauncher({
    inner: new DirectLauncher(),
    size,
    dir,
    onError: (err) => {
      throw err;
    },
  });
  launchers.push(l);
  return l;
}

function spec(runId: string, env: Record<string, string> = { PATH: process.env.PATH ?? '' }): LaunchSpec {
  const runDir = join(dir, runId);
  const entry = join(runDir, 'main.mjs');
  return {
    runtime: 'node',
    warm: node.warm,
    argv: node.argv(entry),
    entry,
    args: [],
    runDir,
    env,
    runEnv: { RUN: runId },
    user: null,
    binds: [],
    limits: NO_LIMITS,
  };
}

/** Prepares, fills with a one-line script and launches; resolves with the exit code and output. */
async function run(
  l: WarmLauncher,
  s: LaunchSpec,
  between?: () => Promise<void>,
): Promise<{ proc: LaunchedProcess; code: number | null; out: string; runDir: string }> {
  const runDir = await l.prepare(s);
  const entry = join(runDir, 'main.mjs');
  writeFileSync(entry, 'console.log(process.env.RUN + " " + process.cwd());');
  await between?.();
  const proc = l.launch({ ...s, runDir, entry, argv: node.argv(entry) });
  let out = '';
  proc.child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  const code = await new Promise<number | null>((r) => proc.child.once('close', (c) => r(c)));
  return { proc, code, out, runDir };
}

async function waitFor(what: string, check: () => boolean): Promise<void> {
  for (let i = 0; i < 400 && !check(); i++) await new Promise((r) => setTimeout(r, 10));
  expect(check(), what).toBe(true);
}

describe('WarmLauncher', () => {
  it('hands a waiting process its run: the waiting directory becomes the run directory', async () => {
    const l = warm();
    await l.fill(spec('template'));
    const [pid] = l.idlePids;
    expect(pid).toBeDefined();
    const { proc, code, out, runDir } = await run(l, spec('r1'));
    expect(proc.alreadyRunning).toBe(true);
    expect(proc.child.pid).toBe(pid);
    expect(runDir).toMatch(/[/]warm-[0-9a-f-]+$/);
    expect(code).toBe(0);
    expect(out).toBe(`r1 ${runDir}\n`);
  });

  it('does not give a run a process started with another environment, and keeps at most size waiting', async () => {
    const l = warm(1);
    await l.fill(spec('template', { PATH: process.env.PATH ?? '', FLAVOUR: 'a' }));
    const [pidA] = l.idlePids;
    const b = await run(l, spec('r2', { PATH: process.env.PATH ?? '', FLAVOUR: 'b' }));
    expect(b.proc.alreadyRunning).toBe(false);
    expect(b.proc.child.pid).not.toBe(pidA);
    expect(b.code).toBe(0);
    // The refill for the newer kind evicts the older one (size 1). The evicted process's
    // directory is removed once it has exited, after it left the idle list: wait for both.
    const slots = (): string[] => readdirSync(dir).filter((n) => n.startsWith('warm-'));
    await waitFor(
      'a process for the new environment waits, and the evicted one has left no directory',
      () => l.idlePids.length === 1 && !l.idlePids.includes(pidA!) && slots().length === 1,
    );
    expect(slots()).toHaveLength(1);
  });

  it('does not give a run a process started with another program (a Python run of another environment)', async () => {
    const l = warm(1);
    await l.fill(spec('template'));
    const [pid] = l.idlePids;
    // The same runtime and environment, another interpreter path: as two Python environments differ.
    const other = join(dir, 'other-node');
    symlinkSync(process.execPath, other);
    const s = spec('r4');
    const result = await run(l, { ...s, argv: [other, ...s.argv.slice(1)] });
    expect(result.proc.alreadyRunning).toBe(false);
    expect(result.proc.child.pid).not.toBe(pid);
    expect(result.code).toBe(0);
  });

  it('starts a run cold in the same directory when its waiting process died while the run was prepared', async () => {
    const l = warm();
    await l.fill(spec('template'));
    const [pid] = l.idlePids as [number];
    const result = await run(l, spec('r3'), async () => {
      process.kill(pid, 'SIGKILL');
      await new Promise((r) => setTimeout(r, 100));
    });
    expect(result.proc.alreadyRunning).toBe(false);
    expect(result.code).toBe(0);
    expect(result.out).toBe(`r3 ${result.runDir}\n`);
  });

  it('stop() kills the waiting processes and removes their directories', async () => {
    const l = warm(2);
    mkdirSync(join(dir, 'keep'));
    await l.fill(spec('template'));
    expect(l.idlePids).toHaveLength(2);
    await l.stop();
    expect(l.idlePids).toEqual([]);
    await waitFor('the waiting directories are gone', () =>
      readdirSync(dir).every((n) => !n.startsWith('warm-')),
    );
  });
});
