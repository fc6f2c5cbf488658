import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll } from 'vitest';
import { InferenceEngine } from '../../packages/quoll/src/inference/index.js';
import type { StepModel } from '../../packages/quoll/src/inference/index.js';
import { writeStepModel } from './write-step-model.js';

/** Engines and model steps for a test file of the inference engine. */
export interface InferenceEngineFixture {
  /**
   * An engine of one worker per deployment, closed after each test; inline runs (on the calling
   * thread, `inline-runner.ts`) only when asked, so that the worker paths are what is tested.
   */
  readonly engine: (syncHandoff: boolean, inlineRuns?: boolean) => InferenceEngine;
  /** A step of the model `bytes`, written to a file of its own in the file's temporary folder. */
  readonly step: (name: string, bytes: Uint8Array) => StepModel;
}

/**
 * Registers the hooks (a temporary folder for the file, engines closed after each test) and
 * returns the fixture. Call it once at the top level of a test file.
 */
export function inferenceEngineFixture(prefix: string): InferenceEngineFixture {
  let dir = '';
  let files = 0;
  const engines: InferenceEngine[] = [];
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), prefix));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  afterEach(async () => {
    await Promise.all(engines.splice(0).map((engine) => engine.close()));
  });
  return {
    engine: (syncHandoff, inlineRuns = false) => {
      const created = new InferenceEngine({ workersPerDeployment: 1, syncHandoff, inlineRuns });
      engines.push(created);
      return created;
    },
    step: (name, bytes) => writeStepModel(dir, name, bytes, files++),
  };
}
