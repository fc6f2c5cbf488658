import { execFile } from 'node:child_process';
import { realpathSync } from 'node:fs';
import { findExecutable } from '../find-executable.js';

/** The oldest Python that runs orchestrations (and the `quoll` client). */
export const MIN_PYTHON: readonly [number, number] = [3, 9];

/** What the server learnt about its Python. */
export interface PythonInfo {
  /** The real path of the interpreter (`sys.executable`, links resolved). */
  executable: string;
  /** `[major, minor, micro]`. */
  version: [number, number, number];
  /** `sys.base_prefix`, links resolved: the installation a sandbox must show read-only. */
  basePrefix: string;
  /**
   * The interpreter's own pip version when it has one: pip >= 22.3 installs into a venv made
   * without pip (`pip --python`), which saves building pip into every environment.
   */
  pip: string | null;
}

/** The outcome of probing: the interpreter, or why it cannot be used. */
export type PythonProbe = { ok: true; info: PythonInfo } | { ok: false; reason: string };

const PROBE_SCRIPT = `
import json, os, sys
try:
    import ensurepip, venv
    venv_ok = True
except Exception as e:
    venv_ok = False
try:
    import pip
    pip_version = pip.__version__
except Exception:
    pip_version = None
print(json.dumps({"executable": os.path.realpath(sys.executable), "version": list(sys.version_info[:3]),
                  "basePrefix": os.path.realpath(sys.base_prefix), "venv": venv_ok, "pip": pip_version}))
`;

/**
 * The Python the server runs orchestrations with (`QUOLL_PYTHON` / `--python`, default `python3`
 * on PATH). It is probed when first needed — a Python zip's upload — and a usable result is kept;
 * a missing or unusable one is probed again next time (an admin may install it meanwhile).
 * Usable = Python >= 3.9 whose `venv` and `ensurepip` import (Debian: the `python3-venv` package).
 *
 * @example
 * const python = new PythonInterpreter('python3');
 * const probe = await python.probe();
 * if (!probe.ok) console.error(probe.reason);
 */
export class PythonInterpreter {
  private known: PythonInfo | null = null;
  private pending: Promise<PythonProbe> | null = null;

  /** @param command A name looked up on PATH, or a path. */
  constructor(readonly command: string) {}

  /** The probed interpreter, when a probe succeeded. */
  get info(): PythonInfo | null {
    return this.known;
  }

  /** Probes the interpreter (once while a probe runs; a success is kept). */
  probe(): Promise<PythonProbe> {
    if (this.known !== null) return Promise.resolve({ ok: true, info: this.known });
    this.pending ??= this.run().finally(() => (this.pending = null));
    return this.pending;
  }

  private async run(): Promise<PythonProbe> {
    const path = findExecutable(this.command);
    if (path === null)
      return { ok: false, reason: `"${this.command}" is not an executable file and not on PATH` };
    const out = await new Promise<{ stdout: string; error: string | null }>((resolve) => {
      execFile(path, ['-I', '-c', PROBE_SCRIPT], { timeout: 30_000 }, (err, stdout, stderr) => {
        resolve({
          stdout,
          error: err === null ? null : (String(stderr).trim().split('\n').at(-1) ?? '') || err.message,
        });
      });
    });
    if (out.error !== null)
      return { ok: false, reason: `"${this.command}" (${path}) did not run: ${out.error}` };
    let parsed: {
      executable: string;
      version: [number, number, number];
      basePrefix: string;
      venv: boolean;
      pip: string | null;
    };
    try {
      parsed = JSON.parse(out.stdout.trim().split('\n').at(-1) ?? '') as typeof parsed;
    } catch {
      return { ok: false, reason: `"${this.command}" (${path}) is not a Python interpreter` };
    }
    const [major, minor] = parsed.version;
    if (major < MIN_PYTHON[0] || (major === MIN_PYTHON[0] && minor < MIN_PYTHON[1]))
      return {
        ok: false,
        reason: `"${this.command}" is Python ${parsed.version.join('.')}; orchestrations need ${MIN_PYTHON.join('.')} or newer`,
      };
    if (!parsed.venv)
      return {
        ok: false,
        reason: `"${this.command}" (Python ${parsed.version.join('.')}) has no venv/ensurepip module (on Debian/Ubuntu: apt-get install python3-venv)`,
      };
    this.known = {
      executable: safeRealpath(parsed.executable),
      version: parsed.version,
      basePrefix: safeRealpath(parsed.basePrefix),
      pip: typeof parsed.pip === 'string' ? parsed.pip : null,
    };
    return { ok: true, info: this.known };
  }
}

function safeRealpath(path: string): string {
  try {
    return realpathSync(path);
  } catch {
    return path;
  }
}
