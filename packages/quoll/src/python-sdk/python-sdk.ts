import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The Python client as this server ships it (built by `npm run build` into `python-sdk/`). */
export interface PythonSdk {
  /** The distribution name, `quoll`. */
  readonly name: string;
  readonly version: string;
  /** The wheel's file name, e.g. `quoll-0.1.0-py3-none-any.whl`. */
  readonly wheelFile: string;
  /** Absolute path of the wheel. */
  readonly wheelPath: string;
  /** SHA-256 (hex) of the wheel. */
  readonly sha256: string;
  /** The wheel's `Requires-Python`, e.g. `>=3.9`. */
  readonly requiresPython: string;
  /** Directory holding the unpacked `quoll` package (put on `sys.path` of orchestration runs). */
  readonly libDir: string;
}

/** Where the build puts the SDK, relative to this module (the same from `src/` and `dist/`). */
const DEFAULT_DIR = fileURLToPath(new URL('../../python-sdk/', import.meta.url));

/**
 * Reads the built Python SDK's description (`sdk.json`) from `dir`; null when the package was
 * built without it (a broken or partial build: the server then says so where it is needed).
 */
export function locatePythonSdk(dir: string = DEFAULT_DIR): PythonSdk | null {
  const manifest = join(dir, 'sdk.json');
  if (!existsSync(manifest)) return null;
  const raw = JSON.parse(readFileSync(manifest, 'utf8')) as {
    name?: unknown;
    version?: unknown;
    wheelFile?: unknown;
    sha256?: unknown;
    requiresPython?: unknown;
  };
  const { name, version, wheelFile, sha256, requiresPython } = raw;
  if (
    typeof name !== 'string' ||
    typeof version !== 'string' ||
    typeof wheelFile !== 'string' ||
    typeof sha256 !== 'string' ||
    typeof requiresPython !== 'string'
  ) {
    throw new Error(`${manifest} is not a Python SDK manifest; rebuild the server package (npm run build).`);
  }
  const wheelPath = join(dir, wheelFile);
  const libDir = join(dir, 'lib');
  if (!existsSync(wheelPath) || !existsSync(join(libDir, 'quoll', '__init__.py'))) return null;
  return Object.freeze({ name, version, wheelFile, wheelPath, sha256, requiresPython, libDir });
}
