import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

const exec = promisify(execFile);

/** A Python interpreter found on this machine. */
export interface PythonInfo {
  /** How it was named (`python3`, `/usr/bin/python3`). */
  command: string;
  /** Its real executable (`sys.executable`). */
  executable: string;
  version: [number, number, number];
  /** Whether `python -m venv` can make an environment with pip (Debian needs python3-venv). */
  hasVenv: boolean;
  /** Which of the asked-for modules import. */
  modules: Record<string, boolean>;
}

/** Tests that need Python run (never skip) when CI=true. */
export const PYTHON_REQUIRED = process.env.CI === 'true';

/** Interpreters the tests try: `QUOLL_TEST_PYTHONS` (comma-separated), else `python3` and Debian's. */
export const PYTHON_CANDIDATES = (process.env.QUOLL_TEST_PYTHONS ?? 'python3,/usr/bin/python3')
  .split(',')
  .map((s) => s.trim())
  .filter((s) => s !== '');

const PROBE = `
import importlib, json, sys
mods = {}
for m in sys.argv[1:]:
    try:
        importlib.import_module(m); mods[m] = True
    except Exception:
        mods[m] = False
try:
    import ensurepip, venv  # noqa: F401
    has_venv = True
except Exception:
    has_venv = False
print(json.dumps({"executable": sys.executable, "version": list(sys.version_info[:3]), "hasVenv": has_venv, "modules": mods}))
`;

/** Probes one interpreter; null when it does not run. */
export async function probePython(
  command: string,
  modules: readonly string[] = [],
): Promise<PythonInfo | null> {
  try {
    const { stdout } = await exec(command, ['-c', PROBE, ...modules], { timeout: 60_000 });
    const info = JSON.parse(stdout.trim().split('\n').at(-1) ?? '') as Omit<PythonInfo, 'command'>;
    return { command, ...info };
  } catch {
    return null;
  }
}

/** The distinct usable interpreters (Python ≥ 3.9) among the candidates. */
export async function findPythons(modules: readonly string[] = []): Promise<PythonInfo[]> {
  const found: PythonInfo[] = [];
  for (const command of PYTHON_CANDIDATES) {
    const info = await probePython(command, modules);
    if (info === null) continue;
    const [major, minor] = info.version;
    if (major < 3 || (major === 3 && minor < 9)) continue;
    if (found.some((f) => f.executable === info.executable)) continue;
    found.push(info);
  }
  return found;
}

/** Why Python tests did not run; under CI=true the caller fails with it instead of skipping. */
export function noPythonReason(what: string): string {
  return `skipped: ${what} needs Python >= 3.9 (tried ${PYTHON_CANDIDATES.join(', ')}; set QUOLL_TEST_PYTHONS)`;
}
