// Content stamps for the build's steps (scripts/build.ts): a step runs only when the content of
// its inputs or of its outputs differs from what it was when the step last succeeded. `npm test`,
// `npm run test:e2e` and `npm run test:e2e:postgres` each build first; right after a build this
// turns their builds into a few hashes instead of the client's CommonJS compile, the Python wheel
// and the console's Vite build. Contents, not times: a checkout or `touch` that leaves the bytes
// as they were rebuilds nothing, and an edit whose file time goes backwards still rebuilds.
import { createHash } from 'node:crypto';
import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { dirname, join, relative, sep } from 'node:path';

/** One step of the build: what it reads, what it writes, and how to run it. */
export interface BuildStep {
  /** Names the step in the build's output and its stamp file. */
  name: string;
  /** Files or folders (relative to the root) whose content the outputs are made from. */
  inputs: readonly string[];
  /** Files or folders (relative to the root) the step writes; a missing or changed one reruns it. */
  outputs: readonly string[];
  /**
   * Leaves out files of the input and output folders that are not part of the step (tests, maps).
   * Gets the path relative to the root, with `/` separators.
   * @default every file counts
   */
  ignore?: (path: string) => boolean;
  /** Runs the step. */
  run: () => Promise<void>;
}

/** What {@link runStep} did. */
export type StepOutcome = 'built' | 'up to date';

/** Where the stamps live, and whether to ignore them. */
export interface StampOptions {
  /** The folder the step's paths are relative to. */
  root: string;
  /** The folder that holds one `<name>.json` stamp per step. */
  stampDir: string;
  /**
   * Runs the step whatever its stamp says.
   * @default false
   */
  force?: boolean;
}

interface Stamp {
  inputs: string;
  outputs: string;
}

async function listFiles(root: string, path: string, ignore: (path: string) => boolean): Promise<string[]> {
  const abs = join(root, path);
  let entries;
  try {
    entries = await readdir(abs, { withFileTypes: true, recursive: true });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    // A missing path adds no file; a path that is a file is listed as itself.
    if (code === 'ENOENT') return [];
    if (code === 'ENOTDIR') return ignore(path) ? [] : [path];
    throw err;
  }
  const out: string[] = [];
  for (const entry of entries) {
    if (!entry.isFile()) continue;
    const rel = relative(root, join(entry.parentPath, entry.name)).split(sep).join('/');
    if (!ignore(rel)) out.push(rel);
  }
  return out;
}

/**
 * One SHA-256 over the names and contents of every file under `paths` (files or folders,
 * relative to `root`), in a stable order: equal exactly when the same files hold the same bytes.
 */
export async function digestPaths(
  root: string,
  paths: readonly string[],
  ignore: (path: string) => boolean = () => false,
): Promise<string> {
  const files = new Set<string>();
  for (const path of paths) for (const file of await listFiles(root, path, ignore)) files.add(file);
  const hash = createHash('sha256');
  for (const file of [...files].sort()) {
    const body = await readFile(join(root, file));
    // Name and length first, so no two different sets of files can hash the same bytes.
    hash.update(`${file}\0${body.length}\0`);
    hash.update(body);
  }
  return hash.digest('hex');
}

async function readStamp(path: string): Promise<Stamp | null> {
  try {
    const stamp = JSON.parse(await readFile(path, 'utf8')) as Partial<Stamp>;
    return typeof stamp.inputs === 'string' && typeof stamp.outputs === 'string'
      ? { inputs: stamp.inputs, outputs: stamp.outputs }
      : null;
  } catch {
    return null;
  }
}

/**
 * Runs `step` unless its inputs and outputs hold what they held after its last successful run.
 * The stamp is removed before the step runs and written only after it succeeds, so a failed or
 * interrupted step runs again next time.
 */
export async function runStep(step: BuildStep, options: StampOptions): Promise<StepOutcome> {
  const ignore = step.ignore ?? (() => false);
  const stampPath = join(options.stampDir, `${step.name}.json`);
  const inputs = await digestPaths(options.root, step.inputs, ignore);
  const stamp = await readStamp(stampPath);
  if (
    options.force !== true &&
    stamp !== null &&
    stamp.inputs === inputs &&
    stamp.outputs === (await digestPaths(options.root, step.outputs, ignore))
  ) {
    return 'up to date';
  }
  await rm(stampPath, { force: true });
  await step.run();
  // The inputs as they were before the run: an input edited meanwhile reruns the step next time
  // (as does one the step rewrites with new content, e.g. the Python client's generated module).
  const after: Stamp = { inputs, outputs: await digestPaths(options.root, step.outputs, ignore) };
  await mkdir(dirname(stampPath), { recursive: true });
  await writeFile(stampPath, `${JSON.stringify(after)}\n`);
  return 'built';
}
