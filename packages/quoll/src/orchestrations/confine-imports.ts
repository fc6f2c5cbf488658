import { readFile, realpath } from 'node:fs/promises';
import { dirname, extname, isAbsolute, relative, resolve, sep } from 'node:path';
import type { Message, Plugin } from 'esbuild';

/** Marks the plugin's own `build.resolve` call so its `onResolve` does not recurse. */
const RESOLVING = Symbol('quoll-confine-resolving');

/**
 * An esbuild plugin that keeps a bundle inside `root` (the extracted upload): every import
 * esbuild would bundle must resolve, symbolic links followed, to a file under `root`, and
 * esbuild loads no other file. esbuild runs on the host as the server's user, so without
 * this `import key from '../../../master.key' with { type: 'text' }` (or an absolute path,
 * or `require()` of one) would copy a host file into the package or into an error message.
 *
 * Imports left external (npm packages, Node built-ins; `packages: 'external'`) are not
 * touched: they resolve at run time, inside the run's sandbox.
 *
 * `approved` collects, relative to `root`, the files that passed: error excerpts may quote
 * those and nothing else (see {@link scrubMessages}).
 */
export class ImportConfinement {
  /** Files (relative to the root, `/`-separated) esbuild was allowed to load. */
  readonly approved = new Set<string>();

  private constructor(
    /** The files as esbuild was given them (`absWorkingDir`). */
    readonly dir: string,
    /** The same, symbolic links resolved. */
    readonly root: string,
  ) {}

  /** `dir` with symbolic links resolved: the root every loaded file must lie under. */
  static async of(dir: string): Promise<ImportConfinement> {
    return new ImportConfinement(dir, await realpath(dir));
  }

  /** `path`'s location relative to the root, or null when it lies outside (or does not exist). */
  async inside(path: string): Promise<string | null> {
    let real: string;
    try {
      real = await realpath(path);
    } catch {
      return null;
    }
    const rel = relative(this.root, real);
    if (rel === '' || rel === '..' || rel.startsWith(`..${sep}`) || isAbsolute(rel)) return null;
    return rel.split(sep).join('/');
  }

  /**
   * Whether the glob `pattern` (`*` for each `${…}`), taken from `dir` (a file's folder, real
   * or not), could match anything outside the root: its static folder lies outside, it is
   * absolute, or a `..` follows a wildcard.
   */
  leaves(dir: string, pattern: string): boolean {
    if (pattern.startsWith('/')) return true;
    const parts = pattern.split('/');
    const star = parts.findIndex((p) => p.includes('*'));
    if (star >= 0 && parts.slice(star).includes('..')) return true;
    const fixed = parts.slice(0, star >= 0 ? star : parts.length - 1).join('/');
    for (const base of [this.dir, this.root]) {
      const rel = relative(base, resolve(dir, fixed));
      if (!(rel === '..' || rel.startsWith(`..${sep}`) || isAbsolute(rel))) return false;
    }
    return true;
  }

  /** `path` as a message may show it: relative to the files, never a host path. */
  shown(path: string): string {
    for (const base of [this.root, this.dir]) {
      const rel = relative(base, path);
      if (!rel.startsWith('..') && !isAbsolute(rel)) return rel.split(sep).join('/');
    }
    return '(a file outside the upload)';
  }

  /** The esbuild plugin: refuses, naming the import, what resolves or loads outside the root. */
  plugin(): Plugin {
    return {
      name: 'quoll-confine-imports',
      setup: (build) => {
        build.onResolve({ filter: /.*/ }, async (args) => {
          // Our own nested resolve, and the entry point (chosen by the packager, checked at load).
          if (args.pluginData === RESOLVING || args.kind === 'entry-point') return undefined;
          const result = await build.resolve(args.path, {
            kind: args.kind,
            importer: args.importer,
            namespace: args.namespace,
            resolveDir: args.resolveDir,
            with: args.with,
            pluginData: RESOLVING,
          });
          if (result.errors.length > 0) return { errors: result.errors, warnings: result.warnings };
          // A package or a Node built-in: resolved at run time, in the sandbox.
          if (result.external) return { path: result.path, external: true, sideEffects: result.sideEffects };
          if (result.namespace === 'file' && (await this.inside(result.path)) === null)
            return { errors: [{ text: outsideText(args.path, this.shown(args.importer)) }] };
          return {
            path: result.path,
            namespace: result.namespace,
            sideEffects: result.sideEffects,
            suffix: result.suffix,
            pluginData: result.pluginData as unknown,
          };
        });
        // The last word, whatever resolved a path (glob imports, tsconfig, package.json fields).
        build.onLoad({ filter: /.*/ }, async (args) => {
          if (args.namespace !== 'file') return undefined;
          const rel = await this.inside(args.path);
          if (rel === null)
            return {
              errors: [
                { text: 'refused to load a file outside the orchestration’s files (the zip’s contents)' },
              ],
            };
          this.approved.add(rel);
          // esbuild expands a template or concatenated import path (`../../x${n}.json`) as a
          // glob against the disk, before any plugin sees it: refused here, before the file
          // is parsed, so what exists outside never changes the outcome.
          if (SOURCE_EXTENSIONS.has(extname(args.path))) {
            const text = await readFile(args.path, 'utf8');
            const line = leavingGlob(text, (pattern) => this.leaves(dirname(args.path), pattern));
            if (line !== null) return { errors: [{ text: globText(this.shown(args.path), line) }] };
          }
          return undefined;
        });
      },
    };
  }
}

/** Files esbuild parses for imports (the ones whose dynamic imports it may expand). */
const SOURCE_EXTENSIONS = new Set(['.js', '.mjs', '.cjs', '.jsx', '.ts', '.mts', '.cts', '.tsx']);

/** `import(` or `require(` followed by a template literal up to its end. */
const TEMPLATE_IMPORT = /\b(?:import|require)\s*\(\s*`([^`]*)`/g;
/** `import(` or `require(` followed by a quoted string and `+`, up to the closing parenthesis. */
const CONCAT_IMPORT = /\b(?:import|require)\s*\(\s*(['"])([^'"\n]*)\1\s*\+([^)]*)\)/g;

/**
 * The 1-based line of the first import in `source` whose path esbuild would expand as a glob
 * and that `leaves` says reaches outside, else null. Read from the text (comments and strings
 * included: erring towards refusal).
 */
function leavingGlob(source: string, leaves: (pattern: string) => boolean): number | null {
  const found: number[] = [];
  for (const m of source.matchAll(TEMPLATE_IMPORT)) {
    const body = m[1] ?? '';
    if (!body.includes('${')) continue;
    if (leaves(body.replace(/\$\{[^}]*\}/g, '*'))) found.push(m.index);
  }
  for (const m of source.matchAll(CONCAT_IMPORT)) {
    // The rest's own string parts joined, each expression a wildcard.
    const rest = (m[3] ?? '').split('+').map((part) => {
      const q = /^\s*(['"])([^'"]*)\1\s*$/.exec(part);
      return q ? (q[2] ?? '') : '*';
    });
    if (leaves(`${m[2] ?? ''}${rest.join('')}`)) found.push(m.index);
  }
  if (found.length === 0) return null;
  const first = Math.min(...found);
  return source.slice(0, first).split('\n').length;
}

function globText(file: string, line: number): string {
  return (
    `${file}:${String(line)}: an import() or require() path built from parts (a template or +) ` +
    'that may reach outside the orchestration’s files is refused: esbuild would match it against ' +
    'the disk; keep such paths inside the zip (`./data/${name}.json`)'
  );
}

function outsideText(specifier: string, importer: string): string {
  return (
    `import "${specifier}" in ${importer} resolves outside the orchestration’s files: ` +
    'an orchestration may only bundle files from its own zip (package imports stay external)'
  );
}

/**
 * `messages` made safe to show a workspace user: a message (or note) located in a file the
 * user did not upload loses its text and excerpt, since esbuild quotes the bytes of a file
 * it failed to parse (`Unexpected "…" in JSON`); and the host's absolute path of the files
 * is removed from every text.
 */
export function scrubMessages(
  messages: Message[],
  confinement: ImportConfinement,
  dirs: string[],
): Message[] {
  const prefixes = [...new Set([...dirs, confinement.root])]
    .map((d) => d.replace(/\/+$/, ''))
    .sort((a, b) => b.length - a.length);
  const scrubText = (text: string): string => {
    let out = text;
    for (const p of prefixes) out = out.split(`${p}/`).join('').split(p).join('.');
    return out;
  };
  const scrub = <T extends { text: string; location: Message['location'] }>(m: T): T => {
    if (m.location === null) return { ...m, text: scrubText(m.text) };
    const file = scrubText(m.location.file);
    if (confinement.approved.has(file))
      return { ...m, text: scrubText(m.text), location: { ...m.location, file } };
    // About a file the user did not upload (a host package.json, say): its text may quote it.
    return {
      ...m,
      text: `esbuild reported a problem in ${file}, which is not part of the upload (details not shown)`,
      location: { ...m.location, file, lineText: '', suggestion: '' },
    };
  };
  return messages.map((m) => ({ ...scrub(m), notes: m.notes.map(scrub) }));
}
