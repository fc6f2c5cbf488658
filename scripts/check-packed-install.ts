// The first hour of a user who installs from the registry, as a CI step: packs both packages,
// installs the tarballs into a fresh project outside the repository with plain `npm install`
// (their dependencies come from the registry), and from there runs the CLI, a server, an SDK
// round trip from an ES module and from CommonJS, TypeScript consumers (ESM and CommonJS,
// `skipLibCheck: false`), an orchestration that imports the SDK, and the hint printed when a
// native build was skipped.
// Run: npx tsx scripts/check-packed-install.ts [--keep] [--pack-only DIR | --packs DIR]
//
// Packing runs both packages' prepack, which deletes and rebuilds their dist/: nothing else may
// use the repository's build meanwhile. Everything after it only reads the tarballs, so CI packs
// first (`--pack-only DIR`: pack into DIR and check the manifests) and then runs the rest from
// those tarballs (`--packs DIR`) in the background, beside steps that leave a core idle.
import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createZip } from '../test/support/zip-builder.js';
import { makeScaleModel } from '../test/support/synthetic-models.js';

const REPO = fileURLToPath(new URL('..', import.meta.url));
const TSC = join(REPO, 'node_modules', 'typescript', 'bin', 'tsc');
const keep = process.argv.includes('--keep');

/** The folder after `flag` on the command line, or null without the flag. */
function dirOption(flag: string): string | null {
  const at = process.argv.indexOf(flag);
  if (at === -1) return null;
  const value = process.argv[at + 1];
  if (value === undefined || value.startsWith('--')) {
    throw new Error(`${flag} needs a folder: npx tsx scripts/check-packed-install.ts ${flag} DIR`);
  }
  return resolve(value);
}
const packOnly = dirOption('--pack-only');
const packsFrom = dirOption('--packs');
const started = Date.now();

function log(text: string): void {
  process.stdout.write(`[packed-install ${((Date.now() - started) / 1000).toFixed(1)}s] ${text}\n`);
}

/**
 * The environment a user's shell has: without the npm_* variables that `npm run` sets from this
 * repository's configuration (its .npmrc skips onnxruntime's download, for one).
 */
function userEnv(): NodeJS.ProcessEnv {
  return Object.fromEntries(
    Object.entries(process.env).filter(([k]) => !/^npm_/i.test(k) && k !== 'INIT_CWD'),
  );
}

interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a command; throws with its output unless it exits as expected. */
async function run(
  command: string,
  args: string[],
  options: { cwd: string; env?: NodeJS.ProcessEnv; expectFailure?: boolean; timeoutMs?: number },
): Promise<RunResult> {
  const child = spawn(command, args, {
    cwd: options.cwd,
    env: { ...userEnv(), ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 300_000);
  const code = await new Promise<number | null>((resolve) => child.once('close', resolve));
  clearTimeout(timer);
  const failed = code !== 0;
  if (failed !== (options.expectFailure ?? false)) {
    throw new Error(
      `${command} ${args.join(' ')} (in ${options.cwd}) exited ${String(code)}:\n${stdout}\n${stderr}`,
    );
  }
  return { code, stdout, stderr };
}

function expectThat(ok: boolean, what: string, output = ''): void {
  if (!ok) throw new Error(`packed install: ${what}\n${output}`);
}

const json = (value: unknown): string => `${JSON.stringify(value, null, 2)}\n`;

/** The consumer's files: one project (CommonJS, as `npm init -y` makes it) with an ESM folder. */
async function writeConsumer(dir: string): Promise<void> {
  await writeFile(
    join(dir, 'package.json'),
    json({ name: 'packed-consumer', version: '1.0.0', private: true, type: 'commonjs' }),
  );
  // The one documented setting: onnxruntime-node's postinstall would fetch CUDA providers
  // from outside the npm registry (Quoll runs on its bundled CPU binary).
  await writeFile(join(dir, '.npmrc'), 'onnxruntime-node-install=skip\n');
  await writeFile(join(dir, 'model.onnx'), makeScaleModel({ width: 2, factor: 2 }));
  await writeFile(
    join(dir, 'orchestration.zip'),
    await createZip([
      {
        path: 'main.ts',
        content: [
          "import { Client, taskArgs } from '@quoll/client';",
          'const client = new Client();',
          'const names = (await client.listWorkspaces()).map((w) => w.name);',
          "console.log(`orchestration sees ${names.includes('packed') ? 'packed' : 'nothing'} ${String(taskArgs().n)}`);",
        ].join('\n'),
      },
    ]),
  );

  await mkdir(join(dir, 'esm'));
  await writeFile(join(dir, 'esm', 'package.json'), json({ type: 'module' }));
  await writeFile(
    join(dir, 'esm', 'round-trip.mjs'),
    `import { Client, arrow } from '@quoll/client';

const client = new Client(); // QUOLL_HOME/credentials.json
const ws = await client.getWorkspace('packed', { createIfNotExist: true });
client.setCurrentWorkspace(ws);
const model = await client.uploadModel('scale', '../model.onnx');
const pipeline = await client.buildPipeline('packedpipe');
await pipeline.clear();
await pipeline.addModelStep(model);
await pipeline.deploy();
const records = await pipeline.infer([{ tensor: [1, 2] }]);
const type = new arrow.FixedSizeList(2, new arrow.Field('item', new arrow.Float32(), false));
const table = await pipeline.infer(new arrow.Table({ tensor: arrow.vectorFromArray([[3, 4]], type) }));
const orchestration = await client.uploadOrchestration({ path: '../orchestration.zip' }, { name: 'packed' });
await orchestration.waitUntilReady({ timeoutMs: 120_000 });
const task = await orchestration.runOnce({ name: 'once', jsonArgs: { n: 7 } });
let run;
for (const deadline = Date.now() + 60_000; Date.now() < deadline; ) {
  [run] = await task.lastRuns();
  if (run !== undefined && run.status !== 'running') break;
  await new Promise((r) => setTimeout(r, 200));
}
const lines = (await run.logs()).map((l) => l.line);
await pipeline.undeploy();
console.log(JSON.stringify({
  records: records[0]['out.scaled'],
  table: Array.from(table.getChild('out.scaled').get(0)),
  run: run.status,
  lines,
  printed: String(model).split('\\n')[0],
}));
`,
  );

  await writeFile(
    join(dir, 'round-trip.js'),
    `const { Client, NotFoundError } = require('@quoll/client');

async function main() {
  const client = new Client();
  client.setCurrentWorkspace(await client.getWorkspace('packed'));
  const pipeline = await client.getPipeline('packedpipe');
  await pipeline.deploy();
  const [row] = await pipeline.infer([{ tensor: [5, 6] }]);
  await pipeline.undeploy();
  let missing = 'no error';
  await client.getPipeline('nope').catch((err) => (missing = err instanceof NotFoundError ? err.code : String(err)));
  console.log(JSON.stringify({ out: row['out.scaled'], missing }));
}
main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
`,
  );

  // TypeScript, as ES modules: both packages' types, strict, skipLibCheck false.
  await mkdir(join(dir, 'ts-esm'));
  await writeFile(join(dir, 'ts-esm', 'package.json'), json({ type: 'module' }));
  await writeFile(
    join(dir, 'ts-esm', 'tsconfig.json'),
    json({
      compilerOptions: {
        strict: true,
        target: 'ES2022',
        module: 'NodeNext',
        moduleResolution: 'NodeNext',
        skipLibCheck: false,
        outDir: 'out',
      },
      include: ['index.ts'],
    }),
  );
  await writeFile(
    join(dir, 'ts-esm', 'index.ts'),
    `import { Client, QuollError, type Pipeline, type InferenceRecord } from '@quoll/client';
import { resolveServerConfig, startServer, type RunningServer } from 'quoll';

const client = new Client();
const workspaces: string[] = (await client.listWorkspaces()).map((w) => w.name);
const pipeline: Pipeline = await client.buildPipeline('typed');
const rows: InferenceRecord[] = [];
const config = resolveServerConfig({ port: 0 }, {}, '.');
const start: (c: typeof config) => Promise<RunningServer> = startServer;
console.log(JSON.stringify({ workspaces, pipeline: pipeline.name, rows, error: QuollError.name, start: typeof start }));
`,
  );

  // TypeScript in a CommonJS project: compiles to require() and must run, not only typecheck.
  await mkdir(join(dir, 'ts-cjs'));
  await writeFile(
    join(dir, 'ts-cjs', 'tsconfig.json'),
    json({
      compilerOptions: {
        strict: true,
        target: 'ES2022',
        module: 'NodeNext',
        moduleResolution: 'NodeNext',
        skipLibCheck: false,
        outDir: 'out',
      },
      include: ['index.ts'],
    }),
  );
  await writeFile(
    join(dir, 'ts-cjs', 'index.ts'),
    `import { Client, type Workspace } from '@quoll/client';

async function main(): Promise<void> {
  const client = new Client();
  const workspaces: Workspace[] = await client.listWorkspaces();
  console.log(JSON.stringify({ count: workspaces.length, auth: Object.keys(client.authHeader()) }));
}
void main();
`,
  );
}

/**
 * Starts `quoll server` through the bin npm linked (what npx runs) in the consumer project, so
 * its own exit code is seen; resolves with its URL once it listens.
 */
async function startServer(
  dir: string,
  home: string,
): Promise<{ url: string; stop: () => Promise<number | null>; output: () => string }> {
  const bin = join(dir, 'node_modules', '.bin', 'quoll');
  const child = spawn(bin, ['server', '--home', home, '--port', '0'], {
    cwd: dir,
    // Run directories inside the work folder, removed with it.
    env: { ...userEnv(), QUOLL_RUNS_DIR: `${home}.runs` },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`the server did not listen within 60 s:\n${out}`)),
      60_000,
    );
    child.stdout.on('data', () => {
      const m = /listening on (http:\/\/\S+)/.exec(out);
      if (m?.[1]) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    });
    void exited.then((code) => reject(new Error(`the server exited with ${String(code)}:\n${out}`)));
  });
  return {
    url,
    output: () => out,
    async stop() {
      if (child.exitCode === null) child.kill('SIGTERM');
      return exited;
    },
  };
}

/**
 * GET / on the installed server answers the console's HTML (not the "console is not built"
 * text), and the script that HTML loads is served as JavaScript.
 */
async function checkConsole(url: string): Promise<void> {
  const page = await fetch(`${url}/`);
  const html = await page.text();
  expectThat(
    page.status === 200 && (page.headers.get('content-type') ?? '').startsWith('text/html'),
    `GET / answers HTML (status ${page.status}, ${page.headers.get('content-type') ?? 'no content-type'})`,
    html.slice(0, 500),
  );
  expectThat(html.includes('<div id="app">'), "GET / is the console's index.html", html.slice(0, 500));
  const script = /<script[^>]+src="(\/assets\/[^"]+\.js)"/.exec(html)?.[1];
  expectThat(
    script !== undefined,
    "the console's index.html loads a script from /assets/",
    html.slice(0, 500),
  );
  const js = await fetch(`${url}${script ?? '/assets/missing.js'}`);
  expectThat(
    js.status === 200 && (js.headers.get('content-type') ?? '').includes('javascript'),
    `GET ${script ?? '(none)'} answers JavaScript (status ${js.status})`,
  );
  await js.arrayBuffer();
}

/** What `npm pack --json` says of a package. */
interface PackManifest {
  name: string;
  filename: string;
  files: { path: string }[];
}

/** Where `--pack-only` leaves the manifests for `--packs`. */
const MANIFESTS = 'manifests.json';

/**
 * Packs both packages into `packs` (running their prepack: dist/ is deleted and rebuilt) and
 * checks what each ships; returns the tarballs' paths.
 */
async function packInto(packs: string): Promise<string[]> {
  log(`packing into ${packs}`);
  const packed = await run(
    'npm',
    ['pack', '--json', '--workspace', '@quoll/client', '--workspace', 'quoll', '--pack-destination', packs],
    { cwd: REPO },
  );
  // Lifecycle scripts (the console's Vite build) print before npm's JSON, colour codes with '['
  // included: the JSON starts at the line that is a lone '['.
  const manifests = JSON.parse(packed.stdout.slice(packed.stdout.search(/^\[\s*$/m))) as PackManifest[];
  for (const m of manifests) {
    const paths = m.files.map((f) => f.path);
    for (const required of ['README.md', 'LICENSE', 'package.json']) {
      expectThat(paths.includes(required), `${m.name} ships no ${required}`);
    }
    expectThat(!paths.some((p) => p.endsWith('.test.ts')), `${m.name} ships test files`);
    if (m.name === 'quoll') {
      expectThat(paths.includes('python-sdk/sdk.json'), 'quoll ships the built Python client');
      expectThat(
        paths.includes('console/index.html'),
        'quoll ships the built web console (console/index.html)',
      );
      expectThat(
        paths.some((p) => /^console\/assets\/index-[\w-]+\.js$/.test(p)),
        "quoll ships the web console's JavaScript (console/assets/index-*.js)",
      );
    }
    // Every source map points at a file that ships.
    const maps = paths.filter((p) => p.endsWith('.js.map'));
    expectThat(maps.length > 0, `${m.name} ships no source maps`);
    for (const map of maps) {
      const source = map.replace(/^dist\//, 'src/').replace(/\.js\.map$/, '.ts');
      if (!paths.includes(source) && !map.startsWith('dist/cjs/')) {
        expectThat(false, `${m.name}: ${map} points at ${source}, which is not in the package`);
      }
    }
    log(`${m.filename}: ${m.files.length} files`);
  }
  await writeFile(join(packs, MANIFESTS), json(manifests));
  return manifests.map((m) => join(packs, m.filename));
}

/** The tarballs a `--pack-only` run left in `packs`. */
async function packedIn(packs: string): Promise<string[]> {
  const text = await readFile(join(packs, MANIFESTS), 'utf8').catch(() => {
    throw new Error(`${packs} holds no ${MANIFESTS}: pack first with --pack-only ${packs}`);
  });
  return (JSON.parse(text) as PackManifest[]).map((m) => join(packs, m.filename));
}

async function main(): Promise<void> {
  if (packOnly !== null) {
    await mkdir(packOnly, { recursive: true });
    await packInto(packOnly);
    log('packed');
    return;
  }
  const work = await mkdtemp(join(tmpdir(), 'quoll-packed-'));
  const dir = join(work, 'consumer');
  await mkdir(dir);
  let server: Awaited<ReturnType<typeof startServer>> | undefined;
  try {
    let tarballs: string[];
    if (packsFrom !== null) {
      tarballs = await packedIn(packsFrom);
      log(`the tarballs packed in ${packsFrom}`);
    } else {
      const packs = join(work, 'packs');
      await mkdir(packs);
      tarballs = await packInto(packs);
    }

    await writeConsumer(dir);
    log('npm install of the two tarballs (dependencies from the registry)');
    await run('npm', ['install', '--no-audit', '--no-fund', ...tarballs], {
      cwd: dir,
      timeoutMs: 600_000,
    });
    const lock = JSON.parse(await readFile(join(dir, 'package-lock.json'), 'utf8')) as {
      packages: Record<string, { version?: string; resolved?: string }>;
    };
    const clientEntries = Object.keys(lock.packages).filter((p) => p.endsWith('node_modules/@quoll/client'));
    expectThat(
      clientEntries.length === 1,
      `@quoll/client is installed once (the tarball), got ${clientEntries.join(', ')}`,
    );

    log('CLI');
    const version = await run('npx', ['--no-install', 'quoll', '--version'], { cwd: dir });
    expectThat(version.stdout.trim() === '0.1.0', 'quoll --version', version.stdout);
    const help = await run('npx', ['--no-install', 'quoll', '--help'], { cwd: dir });
    expectThat(help.stdout.includes('pipeline'), 'quoll --help lists the commands', help.stdout);

    log('server');
    const home = join(work, 'home');
    server = await startServer(dir, home);
    const env = { QUOLL_HOME: home };
    const list = await run('npx', ['--no-install', 'quoll', 'workspace', 'list', '--json'], {
      cwd: dir,
      env,
    });
    expectThat(
      (JSON.parse(list.stdout) as { name: string }[]).length >= 1,
      'quoll workspace list --json',
      list.stdout,
    );

    log('the installed server answers the web console at /');
    await checkConsole(server.url);

    log('SDK round trip from an ES module (model, pipeline, records and Arrow, orchestration run)');
    const esm = await run('node', ['round-trip.mjs'], { cwd: join(dir, 'esm'), env });
    const esmResult = JSON.parse(esm.stdout.trim().split('\n').at(-1) ?? '{}') as Record<string, unknown>;
    expectThat(JSON.stringify(esmResult.records) === '[2,4]', 'records inference', esm.stdout);
    expectThat(JSON.stringify(esmResult.table) === '[6,8]', 'Arrow inference', esm.stdout);
    expectThat(esmResult.run === 'success', 'the orchestration run succeeded', esm.stdout);
    expectThat(
      (esmResult.lines as string[]).includes('orchestration sees packed 7'),
      'the orchestration imported @quoll/client',
      esm.stdout,
    );
    expectThat(/^name\s+scale$/.test(String(esmResult.printed)), 'models print as tables', esm.stdout);

    log('SDK from CommonJS (require)');
    const cjs = await run('node', ['round-trip.js'], { cwd: dir, env });
    expectThat(
      cjs.stdout.trim() === '{"out":[10,12],"missing":"pipeline_not_found"}',
      'CommonJS round trip',
      cjs.stdout + cjs.stderr,
    );

    log('TypeScript consumers (strict, skipLibCheck false): ES modules, then CommonJS');
    await run('node', [TSC, '-p', '.'], { cwd: join(dir, 'ts-esm') });
    const tsEsm = await run('node', ['out/index.js'], { cwd: join(dir, 'ts-esm'), env });
    expectThat(tsEsm.stdout.includes('"pipeline":"typed"'), 'compiled ESM consumer runs', tsEsm.stdout);
    await run('node', [TSC, '-p', '.'], { cwd: join(dir, 'ts-cjs') });
    const tsCjs = await run('node', ['out/index.js'], { cwd: join(dir, 'ts-cjs'), env });
    expectThat(
      tsCjs.stdout.includes('"auth":["Authorization"]'),
      'compiled CommonJS consumer runs',
      tsCjs.stdout + tsCjs.stderr,
    );

    const code = await server.stop();
    server = undefined;
    expectThat(code === 0, `the server stops cleanly on SIGTERM (exit ${String(code)})`);

    log('a skipped native build gets a hint that says what to run');
    const build = join(dir, 'node_modules', 'better-sqlite3', 'build');
    await rename(build, `${build}.hidden`);
    try {
      const broken = await run(
        'npx',
        ['--no-install', 'quoll', 'server', '--home', join(work, 'home2'), '--port', '0'],
        { cwd: dir, env: { QUOLL_RUNS_DIR: join(work, 'runs2') }, expectFailure: true, timeoutMs: 60_000 },
      );
      expectThat(
        broken.stderr.includes('npm rebuild better-sqlite3') && !broken.stderr.includes('    at '),
        'the bindings error names the rebuild command, without a stack trace',
        broken.stderr,
      );
    } finally {
      await rename(`${build}.hidden`, build);
    }
    log('ok');
  } finally {
    if (server !== undefined) await server.stop();
    if (keep) log(`kept ${work}`);
    else await rm(work, { recursive: true, force: true });
  }
}

await main();
