// Python orchestrations and the Python client through a real `quoll server` process:
// upload → ready of a Python zip whose requirement set is already built (first build shown),
// runOnce → first line of a Python run (a TypeScript run in the same script as the reference),
// and the Python client's infer of 1000 rows as records against the TypeScript client's.
// Run: npm run bench -- python — writes bench/results/python.json.
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Orchestration } from '@quoll/client';
import { findPythons } from '../test/support/python.js';
import { makeHouseRows } from '../test/support/synthetic-data.js';
import { makeTreeEnsembleRegressor } from '../test/support/synthetic-models.js';
import { startTestServer } from '../test/support/test-server.js';
import { median, now, percentile, printTable, uploadToReady, writeResults } from './support.js';

const N = 10;
const INFER_REPS = 20;
const root = mkdtempSync(join(tmpdir(), 'quoll-bench-py-'));
const PY_CLIENT_SRC = fileURLToPath(new URL('../packages/python/src/', import.meta.url));

async function toFirstLine(o: Orchestration, text: string, n: number): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = now();
    const task = await o.runOnce({ name: `first-line-${i}` });
    const [run] = await task.lastRuns({ limit: 1 });
    for await (const line of run!.followLogs()) {
      if (line.line === text) {
        out.push(now() - t0);
        break;
      }
    }
  }
  return out;
}

const [python] = await findPythons();
if (python === undefined) {
  console.log('skipped: no Python >= 3.9 here');
  process.exit(0);
}
// A wheel folder pip is pointed at through its own environment variables (no index here).
const wheels = join(root, 'wheels');
mkdirSync(wheels);
execFileSync(python.executable, [
  '-c',
  `import zipfile
with zipfile.ZipFile(${JSON.stringify(join(wheels, 'benchhelper-1.0.0-py3-none-any.whl'))}, 'w') as z:
    z.writestr('benchhelper/__init__.py', 'X = 1\\n')
    z.writestr('benchhelper-1.0.0.dist-info/METADATA', 'Metadata-Version: 2.1\\nName: benchhelper\\nVersion: 1.0.0\\n')
    z.writestr('benchhelper-1.0.0.dist-info/WHEEL', 'Wheel-Version: 1.0\\nGenerator: bench\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n')
    z.writestr('benchhelper-1.0.0.dist-info/RECORD', '')
`,
]);

const server = await startTestServer({
  env: {
    QUOLL_PYTHON: python.executable,
    PIP_FIND_LINKS: wheels,
    PIP_NO_INDEX: '1',
    PIP_CONFIG_FILE: '/dev/null',
  },
});
try {
  const client = server.client();

  // 1. Upload → ready with the requirement set already built.
  const pyFiles = {
    'main.py': "import benchhelper\nprint('first line')",
    'requirements.txt': 'benchhelper==1.0.0\n',
  };
  const [firstBuildMs, pyFirst] = await uploadToReady(client, pyFiles, -1);
  const pyReady: number[] = [];
  for (let i = 0; i < N; i++) pyReady.push((await uploadToReady(client, pyFiles, i))[0]);

  // 2. runOnce → first line: Python, and TypeScript as the reference.
  const pyFirstLine = await toFirstLine(pyFirst, 'first line', N);
  const [, tsFirst] = await uploadToReady(client, { 'main.ts': "console.log('first line');" }, 500);
  const tsFirstLine = await toFirstLine(tsFirst, 'first line', N);

  // 3. infer of 1000 rows as records: the Python client against the TypeScript client.
  const modelPath = join(root, 'model.onnx');
  writeFileSync(modelPath, makeTreeEnsembleRegressor());
  const model = await (
    await client.uploadModel('benchmodel', modelPath)
  ).configure({ tensorFields: ['tensor'] });
  const pipeline = await client.buildPipeline('benchpipe');
  await pipeline.addModelStep(model);
  await pipeline.deploy();
  const flat = makeHouseRows(1000, 7);
  const records = Array.from({ length: 1000 }, (_, r) => ({
    tensor: Array.from(flat.subarray(r * 18, r * 18 + 18)),
  }));
  const recordsFile = join(root, 'records.json');
  writeFileSync(recordsFile, JSON.stringify(records));
  for (let i = 0; i < 3; i++) await pipeline.infer(records); // warm-up
  const tsInfer: number[] = [];
  for (let i = 0; i < INFER_REPS; i++) {
    const t0 = now();
    const out = (await pipeline.infer(records)) as unknown[];
    tsInfer.push(now() - t0);
    if (out.length !== 1000) throw new Error(`TypeScript client: ${out.length} rows`);
  }
  const pyOut = execFileSync(
    python.executable,
    [
      '-c',
      `import json, os, sys, time, quoll
records = json.load(open(sys.argv[1]))
wl = quoll.Client()
p = wl.get_pipeline('benchpipe')
for _ in range(3): p.infer(records)
times = []
for _ in range(int(sys.argv[2])):
    t0 = time.perf_counter(); out = p.infer(records); times.append((time.perf_counter() - t0) * 1000)
    assert len(out) == 1000, len(out)
print(json.dumps(times))`,
      recordsFile,
      String(INFER_REPS),
    ],
    {
      env: { ...process.env, PYTHONPATH: PY_CLIENT_SRC, QUOLL_URL: server.url, QUOLL_TOKEN: server.token },
      encoding: 'utf8',
    },
  );
  const pyInfer = JSON.parse(pyOut.trim().split('\n').at(-1) ?? '[]') as number[];
  await pipeline.undeploy();

  const rows: [string, number[], string][] = [
    ['Python upload → ready, built requirement set', pyReady, '≤ 2000'],
    ['Python runOnce → first line', pyFirstLine, '≤ 300'],
    ['TypeScript runOnce → first line (reference)', tsFirstLine, '-'],
    ['TypeScript client infer 1000 records', tsInfer, '-'],
    ['Python client infer 1000 records', pyInfer, '≤ 1.5 × TS'],
  ];
  const ratio = median(pyInfer) / median(tsInfer);
  console.log(
    `cpus: ${cpus().length}; Python ${python.version.join('.')}; first build of the requirement set: ${firstBuildMs.toFixed(0)} ms`,
  );
  printTable(
    ['measure', 'n', 'p50 ms', 'p90 ms', 'max ms', 'target'],
    rows.map(([name, xs, target]) => [
      name,
      xs.length,
      median(xs),
      percentile(xs, 90),
      Math.max(...xs),
      target,
    ]),
  );
  console.log(`Python / TypeScript client infer p50: ${ratio.toFixed(2)} (target ≤ 1.5)`);
  writeResults('python', {
    cpus: cpus().length,
    python: python.version.join('.'),
    firstBuildMs,
    pyReadyP50: median(pyReady),
    pyFirstLineP50: median(pyFirstLine),
    tsFirstLineP50: median(tsFirstLine),
    tsInferP50: median(tsInfer),
    pyInferP50: median(pyInfer),
    inferRatio: ratio,
  });
} finally {
  await server.stop();
  await server.cleanup();
  rmSync(root, { recursive: true, force: true });
}
