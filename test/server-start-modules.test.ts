import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { serversOnPostgres, startTestServer } from './support/test-server.js';

const PRELOAD = fileURLToPath(new URL('./support/loaded-modules-preload.cjs', import.meta.url));

/**
 * The CommonJS files a server loads by the time it has listened and stopped, without a request,
 * as paths under node_modules (`fastify/fastify.js`).
 */
async function packagesOfAnIdleServer(): Promise<string[]> {
  const dir = await mkdtemp(join(tmpdir(), 'quoll-start-modules-'));
  const out = join(dir, 'modules.json');
  try {
    const server = await startTestServer({
      env: { QUOLL_TEST_LOADED_MODULES: out, NODE_OPTIONS: `--require ${PRELOAD}` },
    });
    expect(await server.stop()).toBe(0);
    await server.cleanup();
    const files = JSON.parse(await readFile(out, 'utf8')) as string[];
    return files.map((f) => /.*node_modules\/(.*)$/.exec(f)?.[1]).filter((p) => p !== undefined);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

describe('a server start', () => {
  it('loads no package that only an upload, a build or a database URL needs', async () => {
    const loaded = await packagesOfAnIdleServer();
    // It did load CommonJS packages (the check reads the right list).
    expect(loaded).toContain('fastify/fastify.js');
    // esbuild (orchestration builds), yauzl (zips), onnx-proto and protobufjs (model files),
    // fast-json-stringify (response schemas, at a route's first answer), pg (PostgreSQL, on the
    // embedded store): each costs every start CPU, and an idle server needs none.
    const unneeded = [
      'esbuild',
      'yauzl',
      'onnx-proto',
      'protobufjs',
      // Fastify itself loads its error serializer from this package's lib/, not the compiler.
      'fast-json-stringify/index.js',
      ...(serversOnPostgres ? [] : ['pg']),
    ];
    expect(unneeded.filter((name) => loaded.some((p) => p === name || p.startsWith(`${name}/`)))).toEqual([]);
  });
});
