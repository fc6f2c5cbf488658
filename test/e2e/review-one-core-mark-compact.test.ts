// Review of lane p99: docs/operations.md gives the reason for --no-parallel-scavenge as "on one
// core V8's helper threads cannot run beside the HTTP thread, only instead of it". The same holds
// for the parallel phases of a full collection (mark-compact): its evacuation and pointer update
// still hand work to helper threads and wait for them inside the pause. Pinned to one core with
// the lane's flag, the server's mark-compacts during start and a model's deployment showed
// `background.evacuate.copy` 1.2-3.8 ms and pauses of 16.7 ms (--trace-gc-nvp). Fix candidates:
// also --no-parallel-compaction and --no-parallel-pointer-update on one core (each set at run
// time without abort in a pinned script with a worker); NOT --no-parallel-marking, which aborts
// at the next mark-compact when set at run time ("Check failed:
// heap()->concurrent_marking()->IsStopped()"), like --single-threaded-gc did.
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Client } from '@quoll/client';
import { deployModelPipeline } from '../support/deploy-model-pipeline.js';
import { makeScaleModel } from '../support/synthetic-models.js';
import { CLI } from '../support/test-server.js';

const canPin = spawnSync('taskset', ['-c', '0', 'true']).status === 0;
const home = mkdtempSync(join(tmpdir(), 'quoll-review-one-core-mc-'));
afterAll(() => rmSync(home, { recursive: true, force: true }));

describe('review: a server on one core, full collections', () => {
  it.runIf(canPin)('does not wait for V8 helper threads inside a mark-compact pause', async () => {
    const child = spawn(
      'taskset',
      [
        '-c',
        '0',
        process.execPath,
        '--trace-gc-nvp',
        CLI,
        'server',
        '--home',
        home,
        '--port',
        '0',
        '--log-level',
        'warn',
      ],
      { env: { ...process.env, QUOLL_RUNS_DIR: join(home, 'runs') }, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    try {
      const url = await new Promise<string>((resolve, reject) => {
        child.stdout.on('data', () => {
          const m = /listening on (http:\/\/\S+)/.exec(out);
          if (m?.[1]) resolve(m[1]);
        });
        void exited.then((code) =>
          reject(new Error(`exited with ${String(code)} before listening:\n${out}`)),
        );
      });
      const { token } = JSON.parse(readFileSync(join(home, 'credentials.json'), 'utf8')) as { token: string };
      const client = new Client({ url, token });
      const pipeline = await deployModelPipeline(client, 'scale', 'scale', makeScaleModel({ width: 2 }));
      for (let i = 0; i < 20; i++) {
        const rows = Array.from({ length: 500 }, (_, j) => ({ tensor: [i, j] }));
        expect(await pipeline.infer(rows)).toHaveLength(500);
      }
    } finally {
      if (child.exitCode === null) child.kill('SIGTERM');
    }
    expect(await exited).toBe(0);
    const fulls = [...out.matchAll(/gc=mc .*/g)].map((m) => m[0]);
    expect(fulls.length).toBeGreaterThan(0);
    const helperMs = fulls.flatMap((line) =>
      [...line.matchAll(/background\.evacuate\.(?:copy|update_pointers)=([\d.]+)/g)].map((m) => Number(m[1])),
    );
    expect(helperMs.filter((ms) => ms > 0)).toEqual([]);
  });
});
