import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { hasSharedFixtures, SHARED_FIXTURES } from '../support/shared-fixtures.js';

const exec = promisify(execFile);
const root = fileURLToPath(new URL('../../', import.meta.url));

interface Summary {
  data: 'fixtures' | 'generated';
  sampleInference: { rows: number; columns: string[]; values: number[] };
  connectionInference: { rows: number; values: number[] };
  packaging: { statuses: string[] };
  runOnce: { runStatus: string; logLines: string[]; inferenceLogRows: number };
  scheduled: { runs: string[]; inferenceLogRows: number; statusAfterKill: string };
}

describe('the seed tutorial, as a user runs it (examples/seed-tutorial)', () => {
  it("runs every section end to end and gives the tutorial's numbers", { timeout: 300_000 }, async () => {
    const dir = await mkdtemp(join(tmpdir(), 'quoll-seed-test-'));
    const summaryFile = join(dir, 'summary.json');
    try {
      const { stdout } = await exec(
        process.execPath,
        ['--import', 'tsx', join(root, 'examples/seed-tutorial/run.ts'), '--summary', summaryFile],
        {
          cwd: root,
          maxBuffer: 64 * 1024 * 1024,
          timeout: 280_000,
        },
      );
      for (const heading of [
        'Sample Inferences',
        'Create Connection',
        'Upload the Orchestration',
        'Task Run Once',
        'Scheduled Tasks',
        'Kill a Task',
      ]) {
        expect(stdout).toContain(`## ${heading}`);
      }
      expect(stdout).toContain('*****');
      const s = JSON.parse(await readFile(summaryFile, 'utf8')) as Summary;
      expect(s.data).toBe(hasSharedFixtures ? 'fixtures' : 'generated');
      expect(s.sampleInference.rows).toBe(1000);
      expect(s.sampleInference.columns).toEqual(['time', 'in.tensor', 'out.variable', 'check_failures']);
      expect(s.connectionInference.rows).toBe(1000);
      expect(s.connectionInference.values).toEqual(s.sampleInference.values);
      if (hasSharedFixtures) {
        const raw = JSON.parse(
          await readFile(join(SHARED_FIXTURES, 'expected-rf_model-xtest-1k.json'), 'utf8'),
        ) as unknown;
        const expected = (
          Array.isArray(raw) ? raw : (raw as { 'out.variable': unknown[] })['out.variable']
        ).map((v) => (Array.isArray(v) ? Number(v[0]) : Number(v)));
        s.sampleInference.values.forEach((v, i) =>
          expect(Math.abs(v - (expected[i] ?? NaN))).toBeLessThanOrEqual(1.0),
        );
        // The tutorial's printed first rows.
        [718013.75, 615094.56, 448627.72, 758714.2, 513264.7].forEach((v, i) =>
          expect(Math.abs((s.sampleInference.values[i] ?? NaN) - v)).toBeLessThanOrEqual(1.0),
        );
      }
      expect(s.packaging.statuses.at(-1)).toBe('ready');
      expect(s.runOnce.runStatus).toBe('success');
      expect(s.runOnce.logLines).toEqual(
        expect.arrayContaining([
          'Getting the workspace orchestrationworkspace',
          'Getting the pipeline orchestrationpipeline',
          'Getting arrow table file',
          'Inference time.  Displaying results after.',
          '[1000 rows x 4 columns]',
        ]),
      );
      expect(s.runOnce.logLines.at(-1)).toMatch(/^quoll: run finished: success/);
      expect(s.runOnce.inferenceLogRows).toBe(1000);
      expect(s.scheduled.runs).toContain('success');
      expect(s.scheduled.inferenceLogRows).toBeGreaterThanOrEqual(1000);
      expect(['pending_kill', 'killed']).toContain(s.scheduled.statusAfterKill);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
