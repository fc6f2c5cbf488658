// A server whose CPU affinity is one core (`taskset -c 0`) changes how V8 collects its garbage
// (packages/quoll/src/cli/server-gc-threads.ts): it starts, answers inferences through many
// collections and stops cleanly (a flag V8 cannot take once running aborts the process at
// start), and no collection of any of its threads hands work to V8's helper threads: no
// scavenge, and no full collection's evacuation or pointer update.
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
const home = mkdtempSync(join(tmpdir(), 'quoll-one-core-'));
afterAll(() => rmSync(home, { recursive: true, force: true }));

describe('a server on one core', () => {
  it.runIf(canPin)(
    'starts, answers inferences, collects without helper threads and stops cleanly',
    async () => {
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
        const { token } = JSON.parse(readFileSync(join(home, 'credentials.json'), 'utf8')) as {
          token: string;
        };
        const client = new Client({ url, token });
        const pipeline = await deployModelPipeline(client, 'scale', 'scale', makeScaleModel({ width: 2 }));
        // Enough requests for the HTTP thread's young generation to be collected several times.
        for (let i = 0; i < 40; i++) {
          const rows = Array.from({ length: 500 }, (_, j) => ({ tensor: [i, j] }));
          const answer = await pipeline.infer(rows);
          expect(answer).toHaveLength(500);
        }
      } finally {
        if (child.exitCode === null) child.kill('SIGTERM');
      }
      expect(await exited, out).toBe(0);
      expect(out).not.toContain('Fatal error');
      // Every scavenge of every isolate (the HTTP thread's, the workers'), from start to stop.
      const helperMs = [...out.matchAll(/ gc=s .* background\.scavenge\.parallel=([\d.]+)/g)].map((m) =>
        Number(m[1]),
      );
      expect(helperMs.length).toBeGreaterThanOrEqual(5);
      expect(helperMs.filter((ms) => ms > 0)).toEqual([]);
      // Every full collection (start and the deployment have several): its parallel phases.
      const fulls = [...out.matchAll(/ gc=mc .*/g)].map((m) => m[0]);
      expect(fulls.length).toBeGreaterThan(0);
      const fullHelperMs = fulls.flatMap((line) =>
        [...line.matchAll(/background\.evacuate\.(?:copy|update_pointers)=([\d.]+)/g)].map((m) =>
          Number(m[1]),
        ),
      );
      expect(fullHelperMs.filter((ms) => ms > 0)).toEqual([]);
    },
  );
});
