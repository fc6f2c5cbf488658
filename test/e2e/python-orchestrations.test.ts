import { existsSync, readdirSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Client } from '@quoll/client';
import { ValidationError, type Orchestration, type Workspace } from '@quoll/client';
import { lastRunEnded, processesTitled, waitFor } from '../support/orchestration-helpers.js';
import { findPythons, noPythonReason, PYTHON_REQUIRED, type PythonInfo } from '../support/python.js';
import { createZip } from '../support/zip-builder.js';
import { startTestServer, type TestServer } from '../support/test-server.js';

// Python orchestrations on a real server: packaging into a virtual environment with pip (from a
// wheel folder this test builds, pip pointed at it through its own environment variables: there
// is no package index here), runs through the same runner as TypeScript (sandboxed when the
// machine can), failure, timeout, kill, live logs, redaction, the quoll client inside a run.

const LOG_LINE = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z (stdout|stderr) F /;
const SECRET = 'tok-py-5ecret-value';

let python: PythonInfo | undefined;
let server: TestServer;
let client: Client;
let workspace: Workspace;
let dir: string;
let wheels: string;

/** Writes a pure-Python wheel `name-version` whose module holds `source`, as pip reads wheels. */
async function buildWheel(into: string, name: string, version: string, source: string): Promise<void> {
  const info = `${name}-${version}.dist-info`;
  const files = {
    [`${name}/__init__.py`]: source,
    [`${info}/METADATA`]: `Metadata-Version: 2.1\nName: ${name}\nVersion: ${version}\n`,
    [`${info}/WHEEL`]:
      'Wheel-Version: 1.0\nGenerator: quoll-test\nRoot-Is-Purelib: true\nTag: py3-none-any\n',
  };
  const record = [...Object.keys(files), `${info}/RECORD`].map((f) => `${f},,`).join('\n') + '\n';
  const zip = await createZip([
    ...Object.entries(files).map(([path, content]) => ({ path, content })),
    { path: `${info}/RECORD`, content: record },
  ]);
  await writeFile(join(into, `${name}-${version}-py3-none-any.whl`), zip);
}

async function upload(name: string, files: Record<string, string>): Promise<Orchestration> {
  const bytes = await createZip(Object.entries(files).map(([path, content]) => ({ path, content })));
  return client.uploadOrchestration({ bytes, fileName: `${name}.zip` }, { name });
}

async function settled(o: Orchestration): Promise<string> {
  return waitFor(
    'packaging to end',
    async () => {
      const s = await o.status();
      return s === 'ready' || s === 'error' ? s : undefined;
    },
    240_000,
  );
}

async function finishedRun(task: Awaited<ReturnType<Orchestration['runOnce']>>) {
  return lastRunEnded(task, 60_000, 'the run to finish');
}

beforeAll(async () => {
  [python] = await findPythons();
  if (python === undefined) {
    if (PYTHON_REQUIRED) throw new Error(noPythonReason('the Python orchestration tests'));
    return;
  }
  dir = await mkdtemp(join(tmpdir(), 'quoll-py-orch-'));
  wheels = join(dir, 'wheels');
  await mkdir(wheels);
  await buildWheel(wheels, 'quollhelper', '1.0.0', 'ANSWER = 42\n');
  server = await startTestServer({
    env: {
      QUOLL_PYTHON: python.executable,
      // pip's own configuration, from the server's environment: this folder only, no index.
      PIP_FIND_LINKS: wheels,
      PIP_NO_INDEX: '1',
      PIP_CONFIG_FILE: '/dev/null',
    },
  });
  client = server.client();
  workspace = await client.getWorkspace('pythonworkspace', { createIfNotExist: true });
  client.setCurrentWorkspace(workspace);
}, 120_000);

afterAll(async () => {
  if (server === undefined) return;
  const code = await server.stop();
  await server.cleanup();
  await rm(dir, { recursive: true, force: true });
  expect(code).toBe(0);
});

describe('Python orchestrations', () => {
  it('runs a main.py with the quoll client: in_task, task_args, a Client() without arguments', async (ctx) => {
    if (python === undefined) return ctx.skip();
    const o = await upload('hello-py', {
      'main.py': [
        'import os, sys, quoll',
        'wl = quoll.Client()',
        'print("in task:", quoll.in_task(), "args:", quoll.task_args())',
        'print("workspaces:", sorted(w.name() for w in wl.list_workspaces()))',
        'print("python", sys.version_info[0], "cwd files", sorted(os.listdir(".")))',
        'print("oops", file=sys.stderr)',
      ].join('\n'),
      'data/x.csv': 'a,b\n',
    });
    expect(await settled(o)).toBe('ready');
    const logs = await o.packagingLogs();
    expect(logs.some((l) => l.line.includes('no requirements'))).toBe(true);
    expect((await client.getOrchestration(o.id)).toJSON()).toMatchObject({
      entrypoint: 'main.py',
      runtime: 'python',
    });
    expect(logs.at(-1)?.line).toBe('ready');
    const task = await o.runOnce({ name: 'hello', jsonArgs: { n: 3 } });
    const run = await finishedRun(task);
    const lines = await run.logs();
    const text = lines.map((l) => l.line).join('\n');
    expect(run.status, text).toBe('success');
    expect(text).toContain("in task: True args: {'n': 3}");
    expect(text).toMatch(/workspaces: \[.*'pythonworkspace'.*\]/);
    expect(text).toContain("cwd files ['data', 'main.py']");
    expect(lines.some((l) => l.stream === 'stderr' && l.line === 'oops')).toBe(true);
    expect(lines.at(-1)?.line).toBe('quoll: run finished: success (exit 0)');
    for (const line of lines) expect(String(line)).toMatch(LOG_LINE);
  });

  it('installs requirements.txt with pip once and reuses the environment for the same set', async (ctx) => {
    if (python === undefined) return ctx.skip();
    const first = await upload('helper-1', {
      'main.py': 'import quollhelper\nprint("answer", quollhelper.ANSWER)\n',
      'requirements.txt': '# the helper\nquollhelper==1.0.0\nquoll\n',
    });
    expect(await settled(first), (await first.packagingLogs()).map((l) => l.line).join('\n')).toBe('ready');
    const firstLogs = await first.packagingLogs();
    expect(
      firstLogs.some(
        (l) => l.source === 'pip' && l.line.includes('Successfully installed quollhelper-1.0.0'),
      ),
    ).toBe(true);
    expect(firstLogs.some((l) => l.line.includes('"quoll" skipped'))).toBe(true);
    const built = firstLogs
      .find((l) => l.line.startsWith('built Python environment '))
      ?.line.split(' ')
      .at(-1);
    expect(built).toMatch(/^[0-9a-f]{32}$/);
    // The install had a pip cache of its own, removed after it: nothing one install's build
    // backend writes there is read by another (no shared <home>/pip-cache).
    expect(existsSync(join(server.home, 'pip-cache'))).toBe(false);
    expect(readdirSync(join(server.home, 'envs')).filter((n) => n.endsWith('-pip-cache'))).toEqual([]);

    // The same set written differently (comments, spacing) is the same environment.
    const second = await upload('helper-2', {
      'only.py': 'import quollhelper\nprint("second", quollhelper.ANSWER)\n',
      'requirements.txt': 'quollhelper==1.0.0   # pinned\n\n',
    });
    expect(await settled(second)).toBe('ready');
    const secondLogs = await second.packagingLogs();
    expect(secondLogs.map((l) => l.line)).toContain(`reusing Python environment ${built}`);
    expect(secondLogs.some((l) => l.source === 'pip')).toBe(false);

    for (const [o, expected] of [
      [first, 'answer 42'],
      [second, 'second 42'],
    ] as const) {
      const run = await finishedRun(await o.runOnce({ name: o.name }));
      const text = (await run.logs()).map((l) => l.line).join('\n');
      expect(run.status, text).toBe('success');
      expect(text).toContain(expected);
    }
  });

  it('a requirement pip cannot install ends packaging in error with pip’s reason', async (ctx) => {
    if (python === undefined) return ctx.skip();
    const o = await upload('bad-req', {
      'main.py': 'print("never")\n',
      'requirements.txt': 'nosuchpackage-quoll==9.9.9\n',
    });
    expect(await settled(o)).toBe('error');
    const error = (await client.getOrchestration(o.id)).error ?? '';
    expect(error).toContain('pip install failed');
    expect(error).toContain('nosuchpackage-quoll');
    const logs = await o.packagingLogs();
    expect(logs.some((l) => l.source === 'pip' && l.line.includes('No matching distribution found'))).toBe(
      true,
    );
    // Nothing half-built is left to be reused: a fixed upload installs afresh.
    await expect(o.runOnce({ name: 'x' })).rejects.toMatchObject({ code: 'orchestration_not_ready' });
  });

  it('a syntax error fails packaging with Python’s message', async (ctx) => {
    if (python === undefined) return ctx.skip();
    const o = await upload('syntax', { 'main.py': 'print("a")\ndef broken(:\n' });
    expect(await settled(o)).toBe('error');
    const error = (await client.getOrchestration(o.id)).error ?? '';
    expect(error).toContain('Python cannot compile main.py');
    expect(error).toContain('line 2');
  });

  it('an exception ends the run as failure with the traceback on stderr', async (ctx) => {
    if (python === undefined) return ctx.skip();
    const o = await upload('fails-py', {
      'main.py': 'print("about to fail")\nraise RuntimeError("boom from python")\n',
    });
    expect(await settled(o)).toBe('ready');
    const run = await finishedRun(await o.runOnce({ name: 'fails' }));
    expect(run.status).toBe('failure');
    expect(run.exitCode).toBe(1);
    const logs = await run.logs();
    expect(logs.some((l) => l.stream === 'stdout' && l.line === 'about to fail')).toBe(true);
    expect(logs.some((l) => l.stream === 'stderr' && l.line.includes('RuntimeError: boom from python'))).toBe(
      true,
    );
    expect(logs.at(-1)?.line).toBe('quoll: run finished: failure (exit 1)');
  });

  it('timeout, live logs and kill work as for TypeScript runs', async (ctx) => {
    if (python === undefined) return ctx.skip();
    const o = await upload('sleeper-py', {
      'main.py': [
        'import os, subprocess, sys, time',
        'marker = "quoll-py-sleeper-" + os.environ["QUOLL_TASK_RUN_ID"]',
        // A child whose command line names the run: it must die with the run, like the run itself.
        'child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)", marker])',
        'print("marker", marker)',
        'for i in range(600):',
        '    print("tick", i)',
        '    time.sleep(0.2)',
      ].join('\n'),
    });
    expect(await settled(o)).toBe('ready');

    const timed = await o.runOnce({ name: 'times out', timeout: 1 });
    const timedRun = await waitFor(
      'timed_out',
      async () => (await timed.lastRuns({ status: 'timed_out' }))[0],
      30_000,
    );
    expect((await timedRun.logs()).at(-1)?.line).toBe('quoll: run finished: timed_out (killed after 1 s)');

    const task = await o.runOnce({ name: 'to kill' });
    const [run] = await waitFor('a run', async () => {
      const runs = await task.lastRuns();
      return runs.length > 0 ? runs : undefined;
    });
    // Lines arrive while the run prints them (unbuffered output).
    const seen: string[] = [];
    for await (const line of run!.followLogs()) {
      seen.push(line.line);
      if (seen.includes('tick 2')) break;
    }
    expect(seen).toContain('tick 0');
    const runId = run!.id;
    // Its child names the run (a warm interpreter's command line names its launcher, not the run).
    expect(processesTitled(runId).length).toBeGreaterThan(0);
    expect(await task.kill()).toBe('pending_kill');
    await waitFor('killed', async () => ((await task.status()) === 'killed' ? true : undefined));
    const [after] = await task.lastRuns();
    expect(after?.status).toBe('killed');
    const logs = await after!.logs();
    expect(logs.at(-1)?.line).toBe('quoll: run finished: killed (the task was killed)');
    // The run's processes are gone, its child included.
    await waitFor(
      'the run process to be gone',
      async () => (processesTitled(runId).length > 0 ? undefined : true),
      5_000,
    );
  });

  it('later runs of an environment take a warm interpreter that imported quoll while waiting, and run as a cold one', async (ctx) => {
    if (python === undefined) return ctx.skip();
    const o = await upload('warm-py', {
      'main.py': [
        'import sys',
        'print("preloaded:", "quoll" in sys.modules)',
        'import os, quoll',
        'print("name:", __name__, "argv:", sys.argv[0] == __file__, sys.argv[1:], "path0:", sys.path[0] == os.getcwd())',
        'print("cwd files:", sorted(os.listdir(".")), "stdin:", repr(sys.stdin.read()))',
        'print("in task:", quoll.in_task(), quoll.task_args())',
      ].join('\n'),
      'helper.py': 'X = 1\n',
    });
    expect(await settled(o)).toBe('ready');
    const outputs: string[][] = [];
    for (let i = 0; i < 3; i++) {
      const run = await finishedRun(await o.runOnce({ name: `warm ${i}`, jsonArgs: { i } }));
      const lines = (await run.logs()).filter((l) => l.stream === 'stdout').map((l) => l.line);
      expect(run.status, lines.join('\n')).toBe('success');
      outputs.push(lines);
    }
    // The environment (no requirements) is the earlier tests' too: the pool has filled for it
    // behind their runs, if not then behind this test's first run.
    expect(outputs.slice(1).some((lines) => lines[0] === 'preloaded: True')).toBe(true);
    outputs.forEach((lines, i) =>
      expect(lines.slice(1, 4)).toEqual([
        'name: __main__ argv: True [] path0: True',
        "cwd files: ['helper.py', 'main.py'] stdin: ''",
        `in task: True {'i': ${i}}`,
      ]),
    );
  });

  it('connection values a Python run reads are masked in its log', async (ctx) => {
    if (python === undefined) return ctx.skip();
    const conn = await client.createConnection('py_secret_conn', 'HTTP', {
      host: `https://example.test/?token=${SECRET}`,
    });
    await workspace.addConnection(conn.name);
    const o = await upload('reads-secret', {
      'main.py': [
        'import quoll',
        'wl = quoll.Client()',
        'c = wl.get_connection(name="py_secret_conn")',
        'print("host is", c.details()["host"])',
      ].join('\n'),
    });
    expect(await settled(o)).toBe('ready');
    const run = await finishedRun(await o.runOnce({ name: 'secret' }));
    const text = (await run.logs()).map((l) => l.line).join('\n');
    expect(run.status, text).toBe('success');
    expect(text).toContain('host is *****');
    expect(text).not.toContain(SECRET);
  });

  it('refuses a zip with both a Python and a TypeScript entrypoint, naming both', async (ctx) => {
    if (python === undefined) return ctx.skip();
    const err = await upload('both', { 'main.py': 'print(1)\n', 'main.ts': 'console.log(1);\n' }).catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(ValidationError);
    expect((err as ValidationError).code).toBe('archive_two_entrypoints');
    expect((err as ValidationError).message).toContain('main.ts');
    expect((err as ValidationError).message).toContain('main.py');
  });

  it('takes a main.py in a subfolder and says where relative paths resolve', async (ctx) => {
    if (python === undefined) return ctx.skip();
    const o = await upload('folder-py', {
      'job/main.py': 'import helper\nprint(open("job/data.txt").read().strip(), helper.X)\n',
      'job/helper.py': 'X = "from helper"\n',
      'job/data.txt': 'data from the zip\n',
    });
    expect(await settled(o)).toBe('ready');
    const logs = await o.packagingLogs();
    expect(logs.some((l) => l.line.includes('runs start in the zip root'))).toBe(true);
    const run = await finishedRun(await o.runOnce({ name: 'folder' }));
    const text = (await run.logs()).map((l) => l.line).join('\n');
    expect(run.status, text).toBe('success');
    expect(text).toContain('data from the zip from helper');
  });
});

describe('a server without Python', () => {
  it('refuses a Python zip at upload with python_unavailable and still packages TypeScript', async (ctx) => {
    if (python === undefined) return ctx.skip();
    const other = await startTestServer({ env: { QUOLL_PYTHON: join(dir, 'no-such-python') } });
    try {
      const c = other.client();
      const bytes = await createZip([{ path: 'main.py', content: 'print(1)\n' }]);
      const err = await c
        .uploadOrchestration({ bytes, fileName: 'py.zip' }, { name: 'py' })
        .catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ValidationError);
      expect((err as ValidationError).code).toBe('python_unavailable');
      expect((err as ValidationError).message).toContain('no-such-python');
      expect(await c.listOrchestrations()).toHaveLength(0);
      const ts = await c.uploadOrchestration(
        { bytes: await createZip([{ path: 'main.ts', content: 'console.log(1);\n' }]), fileName: 'ts.zip' },
        { name: 'ts' },
      );
      expect(await (await ts.waitUntilReady({ timeoutMs: 60_000 })).status()).toBe('ready');
    } finally {
      expect(await other.stop()).toBe(0);
      await other.cleanup();
    }
  });
});
