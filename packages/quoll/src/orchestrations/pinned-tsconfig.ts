import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { TsconfigRaw } from 'esbuild';
import { ApiError } from '../errors/index.js';

/**
 * The `compilerOptions` of an uploaded `tsconfig.json` that esbuild may see: they change how
 * code compiles and name no file. `extends`, `paths`, `baseUrl` and the rest are dropped:
 * esbuild reads what they name on the host, as the server's user, and quotes it in errors.
 */
const KEPT_OPTIONS = [
  'alwaysStrict',
  'experimentalDecorators',
  'importsNotUsedAsValues',
  'jsx',
  'jsxFactory',
  'jsxFragmentFactory',
  'jsxImportSource',
  'preserveValueImports',
  'strict',
  'target',
  'useDefineForClassFields',
  'verbatimModuleSyntax',
] as const;

/** The tsconfig esbuild compiles an orchestration with, and what of the upload's it left out. */
export interface PinnedTsconfig {
  /** Passed as esbuild's `tsconfigRaw`, which also stops esbuild looking for tsconfig files. */
  raw: TsconfigRaw;
  /** The upload's `tsconfig.json` (relative to the zip root), or null when it has none. */
  source: string | null;
  /** Settings of that file that were ignored, e.g. `extends`, `compilerOptions.paths`. */
  ignored: string[];
}

/**
 * Reads the `tsconfig.json` nearest the entrypoint (its folder, then up to the zip root) and
 * keeps only {@link KEPT_OPTIONS}. Comments and trailing commas are allowed, as in TypeScript.
 *
 * @throws ApiError `invalid_archive` when the file is not valid JSON or not an object.
 */
export async function pinnedTsconfig(filesDir: string, entrypoint: string): Promise<PinnedTsconfig> {
  const folders = entrypoint.split('/').slice(0, -1);
  for (let n = folders.length; n >= 0; n--) {
    const source = [...folders.slice(0, n), 'tsconfig.json'].join('/');
    let text: string;
    try {
      text = await readFile(join(filesDir, source), 'utf8');
    } catch {
      continue;
    }
    return pick(parse(text, source), source);
  }
  return { raw: {}, source: null, ignored: [] };
}

function pick(config: Record<string, unknown>, source: string): PinnedTsconfig {
  const ignored = Object.keys(config).filter((k) => k !== 'compilerOptions');
  const options = config.compilerOptions;
  const kept: Record<string, unknown> = {};
  if (isObject(options)) {
    for (const [key, value] of Object.entries(options)) {
      if ((KEPT_OPTIONS as readonly string[]).includes(key)) kept[key] = value;
      else ignored.push(`compilerOptions.${key}`);
    }
  }
  return { raw: { compilerOptions: kept }, source, ignored };
}

function parse(text: string, source: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(stripJsonComments(text));
  } catch (err) {
    throw new ApiError(
      'invalid_archive',
      `The orchestration's ${source} is not valid JSON (${(err as Error).message}). Fix it and upload again.`,
      { file: source },
    );
  }
  if (!isObject(value))
    throw new ApiError('invalid_archive', `The orchestration's ${source} must hold a JSON object.`, {
      file: source,
    });
  return value;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** `text` without `//` and `/* *\/` comments and trailing commas (JSONC), strings kept as they are. */
function stripJsonComments(text: string): string {
  let out = '';
  let i = 0;
  while (i < text.length) {
    const c = text[i] as string;
    if (c === '"') {
      let j = i + 1;
      while (j < text.length && text[j] !== '"') j += text[j] === '\\' ? 2 : 1;
      out += text.slice(i, j + 1);
      i = j + 1;
    } else if (c === '/' && text[i + 1] === '/') {
      while (i < text.length && text[i] !== '\n') i++;
    } else if (c === '/' && text[i + 1] === '*') {
      const end = text.indexOf('*/', i + 2);
      i = end === -1 ? text.length : end + 2;
    } else {
      out += c;
      i++;
    }
  }
  // Trailing commas, now that no comment can sit between one and its bracket.
  let result = '';
  for (let k = 0; k < out.length; k++) {
    const c = out[k] as string;
    if (c === '"') {
      let j = k + 1;
      while (j < out.length && out[j] !== '"') j += out[j] === '\\' ? 2 : 1;
      result += out.slice(k, j + 1);
      k = j;
      continue;
    }
    if (c === ',') {
      let j = k + 1;
      while (j < out.length && /\s/.test(out[j] as string)) j++;
      if (out[j] === '}' || out[j] === ']') continue;
    }
    result += c;
  }
  return result;
}
