import { join } from 'node:path';
import { build, formatMessages } from 'esbuild';
import type { BuildFailure, Message } from 'esbuild';
import { ImportConfinement, scrubMessages } from './confine-imports.js';
import { pinnedTsconfig } from './pinned-tsconfig.js';

/** Where the compiled entrypoint goes, relative to the orchestration's files. */
export const COMPILED_ENTRY = '.quoll/entry.mjs';

/** Result of a successful compile. */
export interface CompileResult {
  /** Absolute path of the written `entry.mjs`. */
  outfile: string;
  /** esbuild warnings, formatted as text lines. */
  warnings: string[];
}

/** The compile failed; `messages` holds esbuild's formatted errors. */
export class CompileError extends Error {
  constructor(
    message: string,
    readonly messages: string[],
  ) {
    super(message);
    this.name = 'CompileError';
  }
}

/**
 * `require` for CommonJS-style code (`require('lodash')` in a `main.js`): in an ES module
 * bundle esbuild's shim calls the global `require`, which does not exist unless we make one.
 */
const REQUIRE_BANNER =
  "import { createRequire as __quollCreateRequire } from 'node:module';\n" +
  'const require = __quollCreateRequire(import.meta.url);';

async function format(messages: Message[], kind: 'error' | 'warning'): Promise<string[]> {
  if (messages.length === 0) return [];
  const text = await formatMessages(messages, { kind, color: false });
  return text.flatMap((t) => t.trimEnd().split('\n'));
}

/**
 * Bundles the entrypoint and its relative imports (TypeScript or JavaScript) into
 * `<filesDir>/.quoll/entry.mjs`: ES module, Node 20, inline source map. Package imports
 * (npm dependencies, `@quoll/client`, Node built-ins) stay external and resolve at run
 * time from the orchestration's `node_modules`. Top-level `await` works because the
 * output is ESM.
 *
 * esbuild runs on the host, as the server's user, so what it may read is pinned: every
 * bundled or loaded file must lie inside `filesDir` (symbolic links followed; see
 * {@link ImportConfinement}), the upload's `tsconfig.json` counts only for options that name
 * no file (see {@link pinnedTsconfig}), and error messages quote no other file and no host path.
 *
 * Note: `import.meta.url` inside bundled code is the URL of `entry.mjs`; code should read
 * its files relative to the working directory (the zip root), as the seed's scripts do.
 *
 * @throws CompileError with esbuild's formatted errors.
 */
export async function compileEntrypoint(filesDir: string, entrypoint: string): Promise<CompileResult> {
  const outfile = join(filesDir, COMPILED_ENTRY);
  const tsconfig = await pinnedTsconfig(filesDir, entrypoint);
  const confinement = await ImportConfinement.of(filesDir);
  const scrub = (messages: Message[]): Message[] => scrubMessages(messages, confinement, [filesDir]);
  const notes =
    tsconfig.source !== null && tsconfig.ignored.length > 0
      ? [`${tsconfig.source}: ignored ${tsconfig.ignored.join(', ')} (only options that name no file apply)`]
      : [];
  try {
    const result = await build({
      absWorkingDir: filesDir,
      entryPoints: [join(filesDir, entrypoint)],
      outfile,
      bundle: true,
      format: 'esm',
      platform: 'node',
      target: 'node20',
      packages: 'external',
      sourcemap: 'inline',
      banner: { js: REQUIRE_BANNER },
      tsconfigRaw: tsconfig.raw,
      plugins: [confinement.plugin()],
      logLevel: 'silent',
      write: true,
    });
    return { outfile, warnings: [...notes, ...(await format(scrub(result.warnings), 'warning'))] };
  } catch (err) {
    const failure = err as Partial<BuildFailure>;
    if (!Array.isArray(failure.errors)) throw err;
    const messages = await format(scrub(failure.errors), 'error');
    const first = messages.slice(0, 12).join('\n');
    throw new CompileError(`Compiling ${entrypoint} failed:\n${first}`, messages);
  }
}
