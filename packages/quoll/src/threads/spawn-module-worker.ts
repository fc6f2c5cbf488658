import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { WorkerOptions } from 'node:worker_threads';

/**
 * Starts the worker module `<name>.js` that sits beside the module at `besideUrl` (pass
 * `import.meta.url`). From TypeScript sources (vitest, tsx) only `<name>.ts` exists; the
 * worker then registers tsx itself before importing it, because a worker's `--import` in
 * execArgv does not apply to its entry module on Node 20. Throws when neither exists.
 *
 * @example
 * const worker = spawnModuleWorker(import.meta.url, 'log-writer-worker', { workerData: settings });
 */
export function spawnModuleWorker(besideUrl: string, name: string, options: WorkerOptions = {}): Worker {
  const compiled = new URL(`./${name}.js`, besideUrl);
  if (existsSync(fileURLToPath(compiled))) return new Worker(compiled, options);
  const source = new URL(`./${name}.ts`, besideUrl);
  if (!besideUrl.endsWith('.ts') || !existsSync(fileURLToPath(source))) {
    throw new Error(`The worker script is missing: ${fileURLToPath(compiled)}. Build the quoll package.`);
  }
  const bootstrap = `import(${JSON.stringify(tsxEsmApiUrl())}).then((tsx) => { tsx.register(); return import(${JSON.stringify(source.href)}); });`;
  return new Worker(bootstrap, { ...options, eval: true });
}

/** The ESM entry of tsx's register API (its CommonJS twin cannot be imported from a worker). */
function tsxEsmApiUrl(): string {
  const manifestPath = createRequire(import.meta.url).resolve('tsx/package.json');
  const manifest = JSON.parse(readFileSync(manifestPath, 'utf8')) as {
    exports?: Record<string, { import?: { default?: string } }>;
  };
  const entry = manifest.exports?.['./esm/api']?.import?.default ?? './dist/esm/api/index.mjs';
  return pathToFileURL(join(dirname(manifestPath), entry)).href;
}
