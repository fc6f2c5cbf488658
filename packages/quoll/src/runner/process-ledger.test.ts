import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ProcessLedger, type LedgerEntry } from './process-ledger.js';

let dir: string;
const started: ChildProcess[] = [];

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'quoll-ledger-'));
});

afterEach(async () => {
  for (const child of started.splice(0)) {
    try {
      process.kill(-(child.pid as number), 'SIGKILL');
    } catch {
      // Gone.
    }
  }
  await rm(dir, { recursive: true, force: true });
});

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return true;
  }
}

/** A group leader (detached, as launchers start runs) that starts a child in its group, then prints its pid. */
async function startGroup(leaderExits: boolean): Promise<{ leader: number; child: number }> {
  const script = `const { spawn } = require('node:child_process');
    const c = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' });
    c.unref();
    console.log(c.pid);
    ${leaderExits ? 'setTimeout(() => process.exit(0), 200);' : 'setInterval(() => {}, 1000);'}`;
  const leader = spawn(process.execPath, ['-e', script], {
    detached: true,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  started.push(leader);
  const child = await new Promise<number>((resolve) =>
    leader.stdout.once('data', (d: Buffer) => resolve(Number(d.toString().trim()))),
  );
  return { leader: leader.pid as number, child };
}

describe.runIf(process.platform === 'linux')('ProcessLedger', () => {
  it('stops what a killed server left: a live group, and a group whose leader is gone', async () => {
    const ledger = new ProcessLedger(dir);
    const whole = await startGroup(false);
    ledger.record(whole.leader, '/runs/a');
    const orphaned = await startGroup(true);
    ledger.record(orphaned.leader, '/runs/b');
    await new Promise<void>((resolve) => started[1]!.once('exit', () => resolve()));
    expect(alive(orphaned.child)).toBe(true);

    // The next server on the home (a new ledger on the same folder).
    const report = await new ProcessLedger(dir).stopLeftovers();
    expect(report.stopped.map((e) => e.dir).sort()).toEqual(['/runs/a', '/runs/b']);
    expect(report.processes).toBe(3);
    for (const pid of [whole.leader, whole.child, orphaned.child])
      expect(alive(pid), `pid ${pid}`).toBe(false);
    expect(await readdir(dir)).toEqual([]);
  });

  it('forgets a group once it has ended, and never kills a process whose pid was reused', async () => {
    const ledger = new ProcessLedger(dir);
    const ended = await startGroup(false);
    ledger.record(ended.leader, '/runs/ended');
    ledger.forget(ended.leader);
    expect(await readdir(dir)).toEqual([]);

    // An entry naming a live process with another start time: the pid now belongs to someone else.
    const bystander = await startGroup(false);
    ledger.record(bystander.leader, '/runs/old');
    const path = join(dir, `${bystander.leader}.json`);
    const entry = JSON.parse(await readFile(path, 'utf8')) as LedgerEntry;
    await writeFile(path, JSON.stringify({ ...entry, startTime: entry.startTime - 1 }));
    const report = await new ProcessLedger(dir).stopLeftovers();
    expect(report.processes).toBe(0);
    expect(alive(bystander.leader)).toBe(true);
    expect(alive(bystander.child)).toBe(true);
    // A void ledger file is cleared too.
    expect(await readdir(dir)).toEqual([]);
  });
});
