import { execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { PythonInterpreter } from '../runner/index.js';
import { PythonEnvCache } from './python-env-cache.js';
import { probeSandbox } from '../../../../test/support/probe-sandbox.js';

let dir: string;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'quoll-pyenvs-'));
});

afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

/**
 * Builds `<links>/<name>-1.0.tar.gz`: an sdist whose in-tree build backend runs `payload`
 * (Python) when pip asks it for its build requirements, then builds a plain wheel.
 */
function hostileSdist(links: string, name: string, payload: string): void {
  const src = join(dir, 'sdist-src', `${name}-1.0`);
  mkdirSync(src, { recursive: true });
  writeFileSync(
    join(src, 'pyproject.toml'),
    `[build-system]\nrequires = []\nbuild-backend = "backend"\nbackend-path = ["."]\n` +
      `[project]\nname = "${name}"\nversion = "1.0"\n`,
  );
  writeFileSync(join(src, 'PKG-INFO'), `Metadata-Version: 2.1\nName: ${name}\nVersion: 1.0\n`);
  writeFileSync(
    join(src, 'backend.py'),
    `import os, zipfile, hashlib, base64
def get_requires_for_build_wheel(config_settings=None):
${payload
  .split('\n')
  .map((l) => `    ${l}`)
  .join('\n')}
    return []
def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    whl = '${name}-1.0-py3-none-any.whl'
    files = {
        '${name}/__init__.py': b'X = 1\\n',
        '${name}-1.0.dist-info/METADATA': b'Metadata-Version: 2.1\\nName: ${name}\\nVersion: 1.0\\n',
        '${name}-1.0.dist-info/WHEEL': b'Wheel-Version: 1.0\\nGenerator: t\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n',
    }
    rec = []
    with zipfile.ZipFile(os.path.join(wheel_directory, whl), 'w') as z:
        for p, data in files.items():
            z.writestr(p, data)
            h = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b'=').decode()
            rec.append(f'{p},sha256={h},{len(data)}')
        rec.append('${name}-1.0.dist-info/RECORD,,')
        z.writestr('${name}-1.0.dist-info/RECORD', '\\n'.join(rec) + '\\n')
    return whl
`,
  );
  mkdirSync(links, { recursive: true });
  execFileSync('tar', [
    'czf',
    join(links, `${name}-1.0.tar.gz`),
    '-C',
    join(dir, 'sdist-src'),
    `${name}-1.0`,
  ]);
  // The sandbox's user reads the find-links folder.
  chmodSync(dir, 0o755);
  chmodSync(links, 0o755);
  chmodSync(join(links, `${name}-1.0.tar.gz`), 0o644);
}

const python = new PythonInterpreter('python3');
const havePython = (await python.probe()).ok;
const sandbox = await probeSandbox('the sandboxed Python install tests');
const root = process.getuid?.() === 0;
if (sandbox.status.sandboxed && (!havePython || !root))
  console.warn('skipping the sandboxed Python install tests: they need root, a sandbox and python3');

describe.skipIf(!sandbox.status.sandboxed || !havePython || !root)(
  'PythonEnvCache in a sandbox (root server)',
  () => {
    function cache(extraEnv: NodeJS.ProcessEnv = {}): PythonEnvCache {
      return new PythonEnvCache({
        envsDir: join(dir, 'envs'),
        python,
        launcher: sandbox.launcher,
        user: sandbox.taskUser,
        env: { ...process.env, PIP_NO_INDEX: '1', PIP_FIND_LINKS: join(dir, 'links'), ...extraEnv },
      });
    }

    it("a build backend's link where the server writes the environment's metadata does not redirect that write to a host file", async () => {
      const victim = join(dir, 'victim-root-only.txt');
      writeFileSync(victim, 'root secret\n', { mode: 0o600 });
      hostileSdist(
        join(dir, 'links'),
        'linkpkg',
        `try:\n    os.symlink('${victim}', '/quoll/run/quoll-env.json')\nexcept Exception as e:\n    print('symlink failed', e)`,
      );
      const env = await cache().ensure(['linkpkg']);
      expect(readFileSync(victim, 'utf8')).toBe('root secret\n');
      // The environment's metadata is a file of the server's, not the link.
      const meta = JSON.parse(readFileSync(join(env.dir, 'quoll-env.json'), 'utf8')) as {
        requirements: string[];
      };
      expect(meta.requirements).toEqual(['linkpkg']);
      // A published environment belongs to the server's user and only it may write it: a later
      // process of the task user cannot rewrite what other orchestrations run with.
      for (const path of [env.dir, join(env.dir, 'quoll-env.json'), join(env.dir, 'bin')]) {
        const st = statSync(path);
        expect(st.uid).toBe(process.getuid?.());
        expect(st.mode & 0o022).toBe(0);
      }
    });

    it("an sdist's build code sees none of the server's environment but what pip needs", async () => {
      hostileSdist(
        join(dir, 'links'),
        'envpkg',
        `import json\njson.dump(dict(os.environ), open('/quoll/run/seen-env.json', 'w'))`,
      );
      const lines: string[] = [];
      const env = await cache({
        FAKE_SERVER_SECRET: 's3cr3t-env-value',
        AWS_SECRET_ACCESS_KEY: 'AKIAFAKESECRET',
        QUOLL_TOKEN: 'qtok',
      }).ensure(['envpkg'], { log: (l) => lines.push(l) });
      const seen = JSON.parse(readFileSync(join(env.dir, 'seen-env.json'), 'utf8')) as Record<string, string>;
      expect(seen).not.toHaveProperty('FAKE_SERVER_SECRET');
      expect(seen).not.toHaveProperty('AWS_SECRET_ACCESS_KEY');
      expect(seen).not.toHaveProperty('QUOLL_TOKEN');
      // What configures where pip fetches from does pass.
      expect(seen.PIP_FIND_LINKS).toBe(join(dir, 'links'));
      expect(seen.PATH).toBeDefined();
      expect(lines.join('\n')).not.toMatch(/s3cr3t-env-value|AKIAFAKESECRET|qtok/);
    });
  },
);
