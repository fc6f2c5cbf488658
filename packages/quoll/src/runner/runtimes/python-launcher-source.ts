/**
 * The Python launcher a warm process runs (see `launch-protocol.ts`): it imports the `quoll`
 * client while it waits (the larger part of a trivial run's start after the interpreter), reads
 * one launch-protocol line on stdin, checks it as `decodeLaunchMessage` does, then becomes that
 * run — working directory, environment, `sys.argv`, `sys.path[0]` and stdin as a cold
 * `python -u <entry>` would have them — and runs the entry as `__main__`. An exception the
 * entry raises is printed as a cold run prints it (its own frames, not the launcher's) and
 * exits 1. Stdin ending before a message arrives ends the process quietly; a message it cannot
 * read ends it with exit code 70.
 */
export const PYTHON_LAUNCHER_SOURCE = `# quoll warm-process launcher for Python (generated; see runner/runtimes/python-launcher-source.ts)
import json
import os
import sys

try:
    import quoll  # noqa: F401  paid while waiting; reads nothing of the run's environment
except Exception:
    pass


def _decode(line):
    m = json.loads(line)
    if not isinstance(m, dict):
        raise ValueError("launch message: not an object")
    if m.get("v") != 1:
        raise ValueError("launch message: unsupported protocol version %s (this launcher speaks 1)" % (m.get("v"),))
    if m.get("kind") != "run":
        raise ValueError("launch message: unknown kind %s" % (m.get("kind"),))
    if not isinstance(m.get("cwd"), str) or not isinstance(m.get("entry"), str):
        raise ValueError("launch message: cwd and entry must be strings")
    env = m.get("env")
    if not isinstance(env, dict) or any(not isinstance(v, str) for v in env.values()):
        raise ValueError("launch message: env must map names to strings")
    argv = m.get("argv")
    if not isinstance(argv, list) or any(not isinstance(a, str) for a in argv):
        raise ValueError("launch message: argv must be a list of strings")
    return m


_line = sys.stdin.readline()
if not _line:
    sys.exit(0)
try:
    _job = _decode(_line)
except Exception as _err:
    sys.stderr.write("quoll launcher: %s\\n" % (_err,))
    sys.exit(70)
# A cold run has no stdin either.
_null = os.open(os.devnull, os.O_RDONLY)
os.dup2(_null, 0)
os.close(_null)
sys.stdin = open(0, "r", closefd=False)
os.chdir(_job["cwd"])
os.environ.update(_job["env"])
_entry = _job["entry"]
sys.argv = [_entry] + _job["argv"]
sys.path[0] = os.path.dirname(_entry)
del _line, _job, _null

import runpy  # noqa: E402

try:
    runpy.run_path(_entry, run_name="__main__")
except SystemExit:
    raise
except BaseException:
    import traceback

    _type, _value, _tb = sys.exc_info()
    # The entry's frames and what it called, as a cold run shows them.
    while _tb is not None and _tb.tb_frame.f_code.co_filename != _entry:
        _tb = _tb.tb_next
    traceback.print_exception(_type, _value, _tb)
    sys.exit(1)
`;
