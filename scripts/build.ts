// `npm run build`: both packages (tsc -b), the client's CommonJS copy, the Python client the
// server ships, and the web console. `npm test`, `npm run test:e2e` and `npm run test:e2e:postgres`
// build first, so right after a build the same work would be done again (about 10 s each on a
// two-core machine, most of it the CommonJS compile and the console's Vite build): every step
// after tsc (which has its own up-to-date check) runs only when the content of its inputs or
// outputs changed since it last succeeded (scripts/build-stamp.ts; stamps in
// node_modules/.cache/quoll-build/). `--force` runs every step.
// Run: npx tsx scripts/build.ts [--force]
import { spawn } from 'node:child_process';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runStep, type BuildStep } from './build-stamp.js';
import { buildPythonSdk, SDK_OUT } from './build-python-sdk.js';

const root = fileURLToPath(new URL('..', import.meta.url));

/** Where the steps' stamps live: inside node_modules, so `npm ci` starts from none. */
export const STAMP_DIR = join(root, 'node_modules', '.cache', 'quoll-build');

/** What every step depends on besides its own files: the build itself and the tool versions. */
const BUILD_INPUTS = ['package-lock.json', 'scripts/build.ts', 'scripts/build-stamp.ts'];

/** Runs a command from the root with the build's output; rejects unless it exits 0. */
function exec(command: string, args: readonly string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd: root, stdio: 'inherit' });
    child.once('error', reject);
    child.once('exit', (code, signal) => {
      if (code === 0) resolve();
      else reject(new Error(`${command} ${args.join(' ')} exited with ${String(code ?? signal)}`));
    });
  });
}

/** The steps after tsc, in order (the console bundles the client's built ES modules). */
export const BUILD_STEPS: readonly BuildStep[] = [
  {
    name: 'client-cjs',
    inputs: [
      ...BUILD_INPUTS,
      'tsconfig.base.json',
      'packages/client/package.json',
      'packages/client/tsconfig.cjs.json',
      'packages/client/src',
    ],
    outputs: ['packages/client/dist/cjs'],
    ignore: (path) => path.endsWith('.test.ts') || path.endsWith('.tsbuildinfo'),
    run: () => exec('npm', ['run', '--silent', 'build:cjs', '-w', '@quoll/client']),
  },
  {
    name: 'python-sdk',
    inputs: [
      ...BUILD_INPUTS,
      'scripts/build-python-sdk.ts',
      'packages/client/src/wire/error-codes.ts',
      'packages/python/pyproject.toml',
      'packages/python/README.md',
      'packages/python/src/quoll',
    ],
    outputs: [relative(root, SDK_OUT)],
    ignore: (path) => path.includes('/__pycache__/'),
    run: async () => {
      const built = await buildPythonSdk();
      process.stdout.write(
        `python sdk: ${relative(root, join(SDK_OUT, built.wheelFile))} (sha256 ${built.sha256})\n`,
      );
    },
  },
  {
    name: 'console',
    inputs: [
      ...BUILD_INPUTS,
      'packages/console/package.json',
      'packages/console/vite.config.ts',
      'packages/console/app',
      'packages/client/package.json',
      'packages/client/dist',
    ],
    outputs: ['packages/quoll/console'],
    // What Vite reads of the client: its ES modules, not the CommonJS copy, types or maps.
    ignore: (path) =>
      path.startsWith('packages/client/dist/') && (path.includes('/cjs/') || !path.endsWith('.js')),
    run: () => exec('npm', ['run', '--silent', 'build', '-w', '@quoll/console']),
  },
];

/** Builds everything; each step after tsc only when it is not up to date. */
export async function build(options: { force?: boolean } = {}): Promise<void> {
  const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc');
  await exec(process.execPath, [tsc, '-b', 'packages/client', 'packages/quoll']);
  for (const step of BUILD_STEPS) {
    const outcome = await runStep(step, { root, stampDir: STAMP_DIR, force: options.force ?? false });
    if (outcome === 'up to date') process.stdout.write(`${step.name}: up to date\n`);
  }
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  await build({ force: process.argv.includes('--force') });
}
