import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { decodeLaunchMessage, encodeLaunchMessage, LAUNCH_PROTOCOL_VERSION } from './launch-protocol.js';
import { NODE_LAUNCHER_SOURCE } from './runtimes/node-launcher-source.js';
import { PYTHON_LAUNCHER_SOURCE } from './runtimes/python-launcher-source.js';

/** A python3 to run the Python launcher with (CI has one; elsewhere its tests skip). */
const PYTHON = spawnSync('python3', ['-c', 'pass']).status === 0 ? 'python3' : null;

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'quoll-launch-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

/**
 * Runs a launcher (Node's by default) with `line` on stdin (pieces written one after another,
 * a moment apart); resolves with its exit code and output.
 */
function runLauncher(
  line: string | Buffer[],
  runtime: 'node' | 'python' = 'node',
): Promise<{ code: number | null; out: string; err: string }> {
  const launcher = join(dir, runtime === 'node' ? 'launcher.mjs' : 'launcher.py');
  writeFileSync(launcher, runtime === 'node' ? NODE_LAUNCHER_SOURCE : PYTHON_LAUNCHER_SOURCE);
  const argv = runtime === 'node' ? [process.execPath, launcher] : [PYTHON ?? 'python3', '-u', launcher];
  return new Promise((resolve) => {
    const child = spawn(argv[0] as string, argv.slice(1), { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('close', (code) => resolve({ code, out, err }));
    const pieces = typeof line === 'string' ? [line] : [...line];
    const next = (): void => {
      const piece = pieces.shift() ?? '';
      if (pieces.length === 0) child.stdin.end(piece);
      else child.stdin.write(piece, () => setTimeout(next, 20));
    };
    next();
  });
}

describe('launch protocol', () => {
  it('round-trips a run message and speaks version 1', () => {
    const message = {
      v: 1,
      kind: 'run',
      cwd: '/w',
      env: { A: 'b' },
      entry: '/w/main.mjs',
      argv: ['x'],
    } as const;
    expect(LAUNCH_PROTOCOL_VERSION).toBe(1);
    expect(decodeLaunchMessage(encodeLaunchMessage({ ...message, env: { A: 'b' }, argv: ['x'] }))).toEqual(
      message,
    );
  });

  it('refuses another version, a wrong kind and malformed fields, naming the problem', () => {
    const good = { v: 1, kind: 'run', cwd: '/w', env: {}, entry: '/w/m.mjs', argv: [] };
    expect(() => decodeLaunchMessage(JSON.stringify({ ...good, v: 2 }))).toThrow(
      /unsupported protocol version 2/,
    );
    expect(() => decodeLaunchMessage(JSON.stringify({ ...good, kind: 'exec' }))).toThrow(/unknown kind exec/);
    expect(() => decodeLaunchMessage(JSON.stringify({ ...good, env: { A: 1 } }))).toThrow(/env/);
    expect(() => decodeLaunchMessage(JSON.stringify({ ...good, argv: 'x' }))).toThrow(/argv/);
    expect(() => decodeLaunchMessage('null')).toThrow(/not an object/);
  });

  it('the Node launcher runs a version-1 message and refuses another version with exit 70', async () => {
    writeFileSync(
      join(dir, 'main.mjs'),
      "console.log(process.cwd(), process.env.GREETING, process.argv.slice(2).join(','));",
    );
    const ok = await runLauncher(
      encodeLaunchMessage({
        v: 1,
        kind: 'run',
        cwd: dir,
        env: { GREETING: 'hi' },
        entry: join(dir, 'main.mjs'),
        argv: ['a', 'b'],
      }),
    );
    expect(ok).toMatchObject({ code: 0, out: `${dir} hi a,b\n` });
    const refused = await runLauncher(`${JSON.stringify({ v: 2, kind: 'run' })}\n`);
    expect(refused.code).toBe(70);
    expect(refused.err).toContain('unsupported protocol version 2');
  });

  it('the Node launcher reads a message sent in pieces and larger than one read, and leaves the run an empty, ended stdin as a cold run has', async () => {
    writeFileSync(
      join(dir, 'main.mjs'),
      [
        "let d = '';",
        "process.stdin.setEncoding('utf8');",
        "process.stdin.on('data', (c) => (d += c));",
        "process.stdin.on('end', () => console.log(process.env.BIG.length, process.env.ACCENT, JSON.stringify(d)));",
      ].join('\n'),
    );
    const line = Buffer.from(
      encodeLaunchMessage({
        v: 1,
        kind: 'run',
        cwd: dir,
        env: { BIG: 'x'.repeat(200_000), ACCENT: 'été' },
        entry: join(dir, 'main.mjs'),
        argv: [],
      }),
    );
    // Three writes, the second cut inside the two bytes of the first é.
    const cut = line.indexOf(Buffer.from('é')) + 1;
    const result = await runLauncher([line.subarray(0, 1000), line.subarray(1000, cut), line.subarray(cut)]);
    expect(result).toMatchObject({ code: 0, out: '200000 été ""\n', err: '' });
  });

  it('the Python launcher becomes the run as a cold `python -u entry` would be, and refuses another version with exit 70', async (ctx) => {
    if (PYTHON === null) return ctx.skip();
    const sub = join(dir, 'sub');
    mkdirSync(sub);
    writeFileSync(join(sub, 'helper.py'), 'VALUE = "from the entry folder"\n');
    writeFileSync(
      join(sub, 'main.py'),
      [
        'import os, sys, helper',
        'print(os.getcwd(), os.environ["GREETING"], ",".join(sys.argv[1:]), sys.argv[0] == __file__, __name__)',
        'print(helper.VALUE, repr(sys.stdin.read()))',
        'def fail():',
        '    raise ValueError("boom from the entry")',
        'if os.environ.get("FAIL"):',
        '    fail()',
      ].join('\n'),
    );
    const message = (env: Record<string, string>): string =>
      encodeLaunchMessage({
        v: 1,
        kind: 'run',
        cwd: dir,
        env,
        entry: join(sub, 'main.py'),
        argv: ['a', 'b'],
      });
    const ok = await runLauncher(message({ GREETING: 'hi' }), 'python');
    expect(ok).toMatchObject({
      code: 0,
      out: `${dir} hi a,b True __main__\nfrom the entry folder ''\n`,
      err: '',
    });
    // An exception: exit 1 and a traceback of the entry's frames, none of the launcher's or runpy's.
    const failed = await runLauncher(message({ GREETING: 'hi', FAIL: '1' }), 'python');
    expect(failed.code).toBe(1);
    expect(failed.err).toMatch(/^Traceback \(most recent call last\):\n {2}File ".*main\.py", line 7/);
    expect(failed.err).toContain('ValueError: boom from the entry');
    expect(failed.err).not.toMatch(/runpy|launcher\.py/);
    for (const bad of [
      { v: 2, kind: 'run' },
      { v: 1, kind: 'run', cwd: '/', entry: '/x', env: { A: 1 }, argv: [] },
    ]) {
      const refused = await runLauncher(`${JSON.stringify(bad)}\n`, 'python');
      expect(refused.code).toBe(70);
      expect(refused.err).toMatch(
        bad.v === 2 ? /unsupported protocol version 2/ : /env must map names to strings/,
      );
    }
    // The server went away before sending a run: a quiet exit.
    expect(await runLauncher('', 'python')).toMatchObject({ code: 0, out: '', err: '' });
  });
});
