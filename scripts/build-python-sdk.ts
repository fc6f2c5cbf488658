// Builds the Python client (packages/python) for the server to ship, without a network and
// without Python: regenerates src/quoll/_error_codes.py from the one error catalogue, then writes
// packages/quoll/python-sdk/ with
//   quoll-<version>-py3-none-any.whl   the wheel (a zip with METADATA, WHEEL and RECORD; reproducible)
//   lib/quoll/*.py                     the same files unpacked, linked into every orchestration venv
//   sdk.json                           name, version, wheel file name, sha256, requires-python
// Run by `npm run build` (scripts/build.ts, when its inputs changed; alone: npx tsx
// scripts/build-python-sdk.ts). A test checks that the committed
// _error_codes.py equals what the catalogue generates.
import { createHash } from 'node:crypto';
import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { dirname, join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import yazl from 'yazl';
import { ERROR_CODES } from '../packages/client/src/wire/error-codes.js';

const root = fileURLToPath(new URL('..', import.meta.url));
/** The Python project. */
export const PYTHON_PROJECT = join(root, 'packages/python');
/** Where the built SDK goes inside the `quoll` npm package. */
export const SDK_OUT = join(root, 'packages/quoll/python-sdk');
const PACKAGE_DIR = join(PYTHON_PROJECT, 'src/quoll');
const ERROR_MODULE = join(PACKAGE_DIR, '_error_codes.py');
/** Every file of the wheel gets this time (1980-01-01, the zip epoch), so builds are reproducible. */
const FIXED_MTIME = new Date(Date.UTC(1980, 0, 1, 0, 0, 0));

/** A Python string literal (JSON's escapes are valid Python for the catalogue's text). */
function pyString(text: string): string {
  return JSON.stringify(text);
}

/** The text of `_error_codes.py`, generated from the catalogue. */
export function renderErrorCodesModule(): string {
  const entries = Object.entries(ERROR_CODES).map(
    ([code, e]) =>
      `    ${pyString(code)}: {"status": ${e.status}, "kind": ${pyString(e.kind)}, "summary": ${pyString(e.summary)}},`,
  );
  return [
    '"""The error catalogue (code → HTTP status, error kind, meaning).',
    '',
    'Generated from packages/client/src/wire/error-codes.ts by scripts/build-python-sdk.ts; do not edit.',
    '"""',
    '',
    'from typing import Dict',
    '',
    '__all__ = ["ERROR_CODES"]',
    '',
    '#: Every code the server returns, with its HTTP status, kind (which error class) and meaning.',
    'ERROR_CODES: Dict[str, Dict[str, object]] = {',
    ...entries,
    '}',
    '',
  ].join('\n');
}

/** The `[project]` fields the wheel's METADATA needs, read from pyproject.toml. */
export interface ProjectMetadata {
  name: string;
  version: string;
  description: string;
  requiresPython: string;
  license: string;
  classifiers: string[];
  extras: Record<string, string[]>;
}

/** Reads the few `[project]` keys the build needs (a deliberately small TOML subset). */
export function readProjectMetadata(toml: string): ProjectMetadata {
  const section = (name: string): string => {
    const start = toml.indexOf(`[${name}]`);
    if (start < 0) return '';
    const rest = toml.slice(start + name.length + 2);
    const next = rest.search(/^\[/m);
    return next < 0 ? rest : rest.slice(0, next);
  };
  const project = section('project');
  const str = (key: string): string => {
    const m = new RegExp(`^${key}\\s*=\\s*"([^"]*)"`, 'm').exec(project);
    if (!m?.[1]) throw new Error(`pyproject.toml: [project] ${key} is missing`);
    return m[1];
  };
  const list = (text: string, key: string): string[] => {
    const m = new RegExp(`^${key}\\s*=\\s*\\[([^\\]]*)\\]`, 'm').exec(text);
    return m?.[1] ? [...m[1].matchAll(/"([^"]*)"/g)].map((x) => x[1] ?? '') : [];
  };
  const license = /^license\s*=\s*\{\s*text\s*=\s*"([^"]*)"/m.exec(project)?.[1] ?? '';
  const extrasText = section('project.optional-dependencies');
  const extras: Record<string, string[]> = {};
  for (const m of extrasText.matchAll(/^([A-Za-z0-9_-]+)\s*=/gm)) {
    if (m[1]) extras[m[1]] = list(extrasText, m[1]);
  }
  return {
    name: str('name'),
    version: str('version'),
    description: str('description'),
    requiresPython: str('requires-python'),
    license,
    classifiers: list(project, 'classifiers'),
    extras,
  };
}

/** `sha256=<urlsafe base64, no padding>`, the hash form of a wheel's RECORD. */
function recordHash(bytes: Buffer): string {
  return `sha256=${createHash('sha256').update(bytes).digest('base64url')}`;
}

async function listPackageFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (!entry.isFile()) continue;
    const path = join(entry.parentPath, entry.name);
    const rel = relative(dir, path).split(sep).join('/');
    if (rel.includes('__pycache__') || !(rel.endsWith('.py') || rel === 'py.typed')) continue;
    out.push(rel);
  }
  return out.sort();
}

/** What a build produced. */
export interface BuiltSdk {
  name: string;
  version: string;
  wheelFile: string;
  sha256: string;
  requiresPython: string;
}

/** Builds the wheel and the unpacked copy into `outDir`. */
export async function buildPythonSdk(outDir: string = SDK_OUT): Promise<BuiltSdk> {
  await writeFile(ERROR_MODULE, renderErrorCodesModule());
  const meta = readProjectMetadata(await readFile(join(PYTHON_PROJECT, 'pyproject.toml'), 'utf8'));
  const init = await readFile(join(PACKAGE_DIR, '__init__.py'), 'utf8');
  const declared = /^__version__\s*=\s*"([^"]+)"/m.exec(init)?.[1];
  if (declared !== meta.version) {
    throw new Error(
      `packages/python: __version__ (${declared ?? 'missing'}) differs from pyproject.toml (${meta.version}); make them equal.`,
    );
  }
  const readme = await readFile(join(PYTHON_PROJECT, 'README.md'), 'utf8');
  const distInfo = `${meta.name}-${meta.version}.dist-info`;
  const files: [string, Buffer][] = [];
  for (const rel of await listPackageFiles(PACKAGE_DIR)) {
    files.push([`quoll/${rel}`, await readFile(join(PACKAGE_DIR, rel))]);
  }
  const metadata = [
    'Metadata-Version: 2.1',
    `Name: ${meta.name}`,
    `Version: ${meta.version}`,
    `Summary: ${meta.description}`,
    ...(meta.license ? [`License: ${meta.license}`] : []),
    `Requires-Python: ${meta.requiresPython}`,
    ...meta.classifiers.map((c) => `Classifier: ${c}`),
    ...Object.entries(meta.extras).flatMap(([extra, reqs]) => [
      `Provides-Extra: ${extra}`,
      ...reqs.map((r) => `Requires-Dist: ${r} ; extra == "${extra}"`),
    ]),
    'Description-Content-Type: text/markdown',
    '',
    readme,
  ].join('\n');
  files.push([`${distInfo}/METADATA`, Buffer.from(metadata)]);
  files.push([
    `${distInfo}/WHEEL`,
    Buffer.from(
      'Wheel-Version: 1.0\nGenerator: quoll build-python-sdk\nRoot-Is-Purelib: true\nTag: py3-none-any\n',
    ),
  ]);
  files.push([`${distInfo}/top_level.txt`, Buffer.from('quoll\n')]);
  const record = [
    ...files.map(([name, bytes]) => `${name},${recordHash(bytes)},${bytes.length}`),
    `${distInfo}/RECORD,,`,
    '',
  ].join('\n');
  files.push([`${distInfo}/RECORD`, Buffer.from(record)]);

  const zip = new yazl.ZipFile();
  for (const [name, bytes] of files) zip.addBuffer(bytes, name, { mtime: FIXED_MTIME, mode: 0o100644 });
  zip.end();
  const chunks: Buffer[] = [];
  for await (const chunk of zip.outputStream as AsyncIterable<Buffer>) chunks.push(chunk);
  const wheel = Buffer.concat(chunks);

  const wheelFile = `${meta.name}-${meta.version}-py3-none-any.whl`;
  await rm(outDir, { recursive: true, force: true });
  await mkdir(outDir, { recursive: true });
  await writeFile(join(outDir, wheelFile), wheel);
  for (const [name, bytes] of files) {
    if (!name.startsWith('quoll/')) continue;
    const target = join(outDir, 'lib', name);
    await mkdir(dirname(target), { recursive: true });
    await writeFile(target, bytes);
  }
  const built: BuiltSdk = {
    name: meta.name,
    version: meta.version,
    wheelFile,
    sha256: createHash('sha256').update(wheel).digest('hex'),
    requiresPython: meta.requiresPython,
  };
  await writeFile(join(outDir, 'sdk.json'), `${JSON.stringify(built, null, 2)}\n`);
  return built;
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  const built = await buildPythonSdk();
  process.stdout.write(
    `python sdk: ${relative(root, join(SDK_OUT, built.wheelFile))} (sha256 ${built.sha256})\n`,
  );
}
