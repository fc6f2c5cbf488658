import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join, posix } from 'node:path';
import { ApiError } from '../errors/index.js';

/** A Python orchestration's requirements, normalised for caching. */
export interface PythonRequirements {
  /** Requirement and option lines as pip reads them: no comments, blanks or continuations. */
  lines: string[];
  /** Lines left out because the server provides them (the `quoll` client). */
  provided: string[];
  /** Where the file was found, relative to the zip root; null without a `requirements.txt`. */
  source: string | null;
}

/** The client package: always on a run's import path, never installed from an index. */
const CLIENT = /^quoll(\s*\[[^\]]*\])?\s*(([<>=!~]=?|===).*|;.*|@.*)?$/i;

/** Options that read other files, which are not part of the hashed requirement set. */
const FILE_OPTIONS = /^(-r|--requirement|-c|--constraint|-e|--editable)(\s|=|$)/;

/** A requirement given as a path or file URL (a folder or wheel on the packaging machine). */
const LOCAL = /^(\.{1,2}\/|\/|~|file:)/i;

/**
 * Whether a normalised line names a local path anywhere pip would read one: at its start, as
 * an option's value (`--find-links /opt/wheels`, `-i=file:///srv/simple`), or as a direct
 * reference (`pkg @ file:///…`, `pkg@../pkg`).
 */
function namesLocalPath(line: string): boolean {
  for (const token of line.split(' ')) {
    const value = /^-[\w-]*=/.test(token) ? token.slice(token.indexOf('=') + 1) : token;
    if (LOCAL.test(value)) return true;
    const at = value.indexOf('@');
    if (at > 0 && LOCAL.test(value.slice(at + 1))) return true;
  }
  return false;
}

/**
 * Normalises the text of a `requirements.txt`: joins `\` continuations, drops comments
 * (`#` at the start or after whitespace) and blank lines, trims each line and collapses its
 * inner whitespace. The order stays (options such as `--index-url` may matter to pip).
 *
 * @throws ApiError `invalid_archive` for a line that reads another file (`-r`, `-c`, `-e`) or
 * names a local path: neither is part of what the environment is cached by.
 */
export function normaliseRequirements(text: string, source: string): { lines: string[]; provided: string[] } {
  const lines: string[] = [];
  const provided: string[] = [];
  const joined = text.replace(/^\uFEFF/, '').replace(/\\\r?\n/g, ' ');
  for (const raw of joined.split(/\r?\n/)) {
    const line = raw
      .replace(/(^|\s)#.*$/, '')
      .trim()
      .replace(/\s+/g, ' ');
    if (line === '') continue;
    if (FILE_OPTIONS.test(line)) {
      throw new ApiError(
        'invalid_archive',
        `The orchestration's ${source} line "${line}" reads another file; list every requirement in ${source} itself ` +
          '(there is one requirements file per orchestration) and upload again.',
        { file: source, line },
      );
    }
    if (namesLocalPath(line)) {
      throw new ApiError(
        'invalid_archive',
        `The orchestration's ${source} line "${line}" names a local path, which does not exist where the ` +
          'orchestration is packaged. Publish the package to your index, or put its wheel in a folder the ' +
          "server's pip finds (PIP_FIND_LINKS), and name it by its package name.",
        { file: source, line },
      );
    }
    if (CLIENT.test(line)) {
      provided.push(line);
      continue;
    }
    lines.push(line);
  }
  return { lines, provided };
}

/**
 * Reads an extracted Python orchestration's requirements: the `requirements.txt` at the zip
 * root, else the one beside the entrypoint (a zip of a folder puts it there). No file, or one
 * with nothing to install, gives an empty set.
 */
export async function readPythonRequirements(
  filesDir: string,
  entrypoint: string,
): Promise<PythonRequirements> {
  const entryDir = posix.dirname(entrypoint);
  const places = entryDir === '.' ? [''] : ['', entryDir];
  for (const place of places) {
    const source = place === '' ? 'requirements.txt' : `${place}/requirements.txt`;
    let text: string;
    try {
      text = await readFile(join(filesDir, source), 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
      throw err;
    }
    return { ...normaliseRequirements(text, source), source };
  }
  return { lines: [], provided: [], source: null };
}

/**
 * The cache key of a Python environment: the interpreter (its real path and `major.minor`, as
 * packages with compiled parts are built per version) and the normalised requirement lines.
 */
export function hashPythonEnv(
  lines: readonly string[],
  python: { executable: string; version: readonly number[] },
): string {
  const h = createHash('sha256');
  h.update(`python\0${python.executable}\0${python.version.slice(0, 2).join('.')}\0`);
  h.update(lines.join('\n'));
  return h.digest('hex').slice(0, 32);
}
