import { execFile } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { OrchestrationStatus } from '@quoll/client/wire';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createZip } from '../../../../test/support/zip-builder.js';
import type { ZipEntrySpec } from '../../../../test/support/zip-builder.js';
import type { ReceivedFile } from '../blobs/index.js';
import { ApiError } from '../errors/index.js';
import { openStore } from '../store/index.js';
import type { Stores } from '../store/index.js';
import { EnvCache } from './env-cache.js';
import type { OrchestrationRecord, OrchestrationStore } from './orchestration-store.js';
import { Packager } from './packager.js';
import type { PackagerOptions } from './packager.js';

const run = promisify(execFile);

let root: string;
let home: string;
let stores: Stores;
let store: OrchestrationStore;
const packagers: Packager[] = [];

beforeEach(async () => {
  root = mkdtempSync(join(tmpdir(), 'quoll-packager-'));
  home = join(root, 'home');
  mkdirSync(home);
  stores = await openStore({ kind: 'sqlite', path: join(root, 'quoll.db') });
  store = stores.orchestrations;
});

afterEach(async () => {
  for (const p of packagers.splice(0)) await p.stop();
  await stores.close();
  rmSync(root, { recursive: true, force: true });
});

function packager(options: Partial<PackagerOptions> = {}): Packager {
  const p = new Packager({ store, home, pollIntervalMs: 50, ...options });
  packagers.push(p);
  return p;
}

let uploads = 0;
async function upload(entries: ZipEntrySpec[]): Promise<ReceivedFile> {
  const path = join(root, `upload-${++uploads}.zip`);
  const bytes = await createZip(entries);
  writeFileSync(path, bytes);
  return { path, sha256: 'f'.repeat(64), size: bytes.length };
}

async function submit(p: Packager, entries: ZipEntrySpec[], name = 'job'): Promise<OrchestrationRecord> {
  return p.submit({ workspaceId: 1, name, fileName: `${name}.zip`, upload: await upload(entries) });
}

/** Polls the store until the orchestration reaches one of `statuses` (the test timeout bounds it). */
async function waitForStatus(
  id: string,
  statuses: OrchestrationStatus[] = ['ready', 'error'],
): Promise<OrchestrationRecord> {
  for (;;) {
    const record = await store.getOrchestration(id);
    if (record !== null && statuses.includes(record.status)) return record;
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** A claim by `owner`, now, leased for `leaseMs` by the store's clock. */
function claimBy(owner: string, leaseMs: number): { owner: string; at: string; leaseMs: number } {
  return { owner, at: new Date().toISOString(), leaseMs };
}

async function runEntry(p: Packager, id: string): Promise<string> {
  const pkg = await p.resolvePackage(id);
  const { stdout } = await run(process.execPath, [pkg.entry], { cwd: pkg.dir });
  return stdout;
}

function logText(lines: { line: string }[]): string {
  return lines.map((l) => l.line).join('\n');
}

const IS_NUMBER_PKG = {
  path: 'package.json',
  content: JSON.stringify({ dependencies: { 'is-number': '7.0.0' } }),
};

describe('Packager.submit', () => {
  const refused: [string, ZipEntrySpec[] | 'not-a-zip', string][] = [
    ['not a zip', 'not-a-zip', 'invalid_archive'],
    ['no entrypoint', [{ path: 'data.csv', content: 'a' }], 'archive_no_entrypoint'],
    [
      'a ../ entry',
      [
        { path: 'main.ts', content: '' },
        { path: '../evil.js', content: 'x' },
      ],
      'archive_unsafe_entry',
    ],
    [
      'a symlink',
      [
        { path: 'main.ts', content: '' },
        { path: 'l', symlinkTarget: '/etc' },
      ],
      'archive_unsafe_entry',
    ],
    [
      'a bomb',
      [
        { path: 'main.ts', content: '' },
        { path: 'z', content: Buffer.alloc(4 << 20) },
      ],
      'archive_too_large',
    ],
  ];
  for (const [what, entries, code] of refused) {
    it(`refuses ${what} with ${code}, storing nothing and deleting the upload`, async () => {
      const p = packager();
      let file: ReceivedFile;
      if (entries === 'not-a-zip') {
        file = { path: join(root, 'bad.zip'), sha256: 'f'.repeat(64), size: 3 };
        writeFileSync(file.path, 'not');
      } else {
        file = await upload(entries);
      }
      const err = await p.submit({ workspaceId: 1, name: 'x', fileName: 'x.zip', upload: file }).then(
        () => null,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(ApiError);
      expect((err as ApiError).code).toBe(code);
      expect(await store.listOrchestrations()).toEqual([]);
      expect(existsSync(file.path)).toBe(false);
      expect(
        existsSync(join(home, 'orchestrations')) ? readdirSync(join(home, 'orchestrations')) : [],
      ).toEqual([]);
    });
  }

  it('records an accepted zip as pending_packaging with its entrypoint, before any packaging', async () => {
    const p = packager();
    const record = await submit(p, [{ path: 'job/main.ts', content: 'console.log(1)' }], '');
    expect(record).toMatchObject({
      status: 'pending_packaging',
      entrypoint: 'job/main.ts',
      name: '',
      fileName: '.zip',
    });
    expect(existsSync(join(home, 'orchestrations', record.id, 'source.zip'))).toBe(true);
    await expect(p.resolvePackage(record.id)).rejects.toMatchObject({ code: 'orchestration_not_ready' });
    await expect(p.resolvePackage('nope')).rejects.toMatchObject({ code: 'orchestration_not_found' });
  });
});

describe('Packager', () => {
  it('packages a TypeScript orchestration without dependencies; entry.mjs runs with sibling imports, top-level await and @quoll/client', async () => {
    const p = packager();
    await p.start();
    const record = await submit(p, [
      {
        path: 'main.ts',
        content: [
          "import { readFileSync } from 'node:fs';",
          "import { Client, inTask } from '@quoll/client';",
          "import { ERROR_CODES } from '@quoll/client/wire';",
          "import { greet } from './lib/greet.js';",
          'const answer: number = await Promise.resolve(41).then((n) => n + 1);',
          "console.log(greet('quoll'), answer, typeof Client, inTask(), 'invalid_archive' in ERROR_CODES);",
          "console.log(readFileSync('./data/msg.txt', 'utf8'));",
        ].join('\n'),
      },
      {
        path: 'lib/greet.ts',
        content: 'export function greet(name: string): string { return `hello ${name}`; }',
      },
      { path: 'data/msg.txt', content: 'read from the zip root' },
    ]);
    const done = await waitForStatus(record.id);
    expect(done).toMatchObject({ status: 'ready', error: null, entrypoint: 'main.ts', depHash: null });
    expect(p.envCache.installCount).toBe(0);
    expect(await runEntry(p, record.id)).toBe('hello quoll 42 function false true\nread from the zip root\n');
    const log = logText(await store.getPackagingLog(record.id));
    expect(log).toContain('entrypoint main.ts');
    expect(log).toContain('compiled main.ts → .quoll/entry.mjs');
    expect(log).not.toContain('npm');
  });

  it('runs a JavaScript entrypoint in a subdirectory through esbuild too', async () => {
    const p = packager();
    await p.start();
    const record = await submit(p, [{ path: 'job/main.js', content: "console.log('js', typeof require);" }]);
    expect(await waitForStatus(record.id)).toMatchObject({ status: 'ready', entrypoint: 'job/main.js' });
    const pkg = await p.resolvePackage(record.id);
    expect(pkg).toEqual({
      dir: join(home, 'orchestrations', record.id, 'files'),
      entry: '.quoll/entry.mjs',
      runtime: 'node',
      nodeModulesDir: join(home, 'orchestrations', record.id, 'node_modules'),
      envNodeModulesDir: null,
    });
    expect(await runEntry(p, record.id)).toBe('js function\n');
  });

  it('ends in error with esbuild’s message when the code does not compile', async () => {
    const p = packager();
    await p.start();
    const record = await submit(p, [
      { path: 'main.ts', content: "import { x } from './missing.js';\nconsole.log(x);" },
    ]);
    const done = await waitForStatus(record.id);
    expect(done.status).toBe('error');
    expect(done.error).toContain('Compiling main.ts failed');
    expect(done.error).toContain('./missing.js');
    expect(logText(await store.getPackagingLog(record.id))).toContain('packaging failed');
  });

  it('ends in error when package.json is not valid JSON', async () => {
    const p = packager();
    await p.start();
    const record = await submit(p, [
      { path: 'main.ts', content: 'console.log(1)' },
      { path: 'package.json', content: '{ "dependencies": ' },
    ]);
    const done = await waitForStatus(record.id);
    expect(done.status).toBe('error');
    expect(done.error).toContain('package.json is not valid JSON');
  });

  it('installs a dependency set once and reuses it for the next orchestration with the same set', async () => {
    const p = packager();
    await p.start();
    const first = await submit(p, [
      IS_NUMBER_PKG,
      {
        path: 'main.ts',
        content: "import isNumber from 'is-number';\nconsole.log(isNumber(5), isNumber('x'));",
      },
    ]);
    expect(await waitForStatus(first.id)).toMatchObject({ status: 'ready' });
    // CommonJS-style code with require() works as well.
    const second = await submit(p, [
      IS_NUMBER_PKG,
      {
        path: 'main.js',
        content: "const isNumber = require('is-number');\nconsole.log('cjs', isNumber(1));",
      },
    ]);
    const done = await waitForStatus(second.id);
    expect(done).toMatchObject({ status: 'ready' });
    expect(done.depHash).toBe((await store.getOrchestration(first.id))?.depHash);
    expect(p.envCache.installCount).toBe(1);
    expect(logText(await store.getPackagingLog(first.id))).toMatch(
      /\$ npm install[\s\S]*installed environment/,
    );
    expect(logText(await store.getPackagingLog(second.id))).toContain('reusing installed environment');
    expect(await runEntry(p, first.id)).toBe('true false\n');
    expect(await runEntry(p, second.id)).toBe('cjs true\n');
  });

  it('two concurrent packagings of one dependency set share one npm install', async () => {
    const p = packager({ concurrency: 2 });
    const entries: ZipEntrySpec[] = [
      IS_NUMBER_PKG,
      { path: 'main.js', content: "import n from 'is-number'; console.log(n(2));" },
    ];
    // Both are pending before the workers start, so the two workers claim them together.
    const a = await submit(p, entries, 'a');
    const b = await submit(p, entries, 'b');
    await p.start();
    expect((await waitForStatus(a.id)).status).toBe('ready');
    expect((await waitForStatus(b.id)).status).toBe('ready');
    expect(p.envCache.installCount).toBe(1);
    // Each log holds npm's output: the second joined the running install instead of reusing a finished one.
    expect(logText(await store.getPackagingLog(a.id))).toContain('$ npm install');
    expect(logText(await store.getPackagingLog(b.id))).toContain('$ npm install');
  });

  it('a failed install ends in error with npm’s first error lines', async () => {
    const p = packager();
    await p.start();
    const record = await submit(p, [
      { path: 'package.json', content: JSON.stringify({ dependencies: { 'is-number': '999.999.999' } }) },
      { path: 'main.js', content: 'console.log(1)' },
    ]);
    const done = await waitForStatus(record.id);
    expect(done.status).toBe('error');
    expect(done.error).toMatch(/^npm install failed:\n.*(ETARGET|notarget)/s);
  });

  it('packages, after a restart, an orchestration a crashed server left in packaging', async () => {
    const first = packager();
    const record = await submit(first, [{ path: 'main.ts', content: "console.log('after restart')" }]);
    // A crash right after the claim: the row says packaging and nothing is running.
    expect((await store.claimOrchestrationForPackaging(claimBy('local', 60_000)))?.id).toBe(record.id);
    const second = packager();
    await second.start();
    expect((await waitForStatus(record.id)).status).toBe('ready');
    expect(await runEntry(second, record.id)).toBe('after restart\n');
  });

  it("a packager whose clock runs ahead does not take over a job another packager's lease still holds", async () => {
    const first = packager({ owner: 'node-a' });
    const record = await submit(first, [{ path: 'main.ts', content: "console.log('node a')" }]);
    // node-a claims it (and would renew it every 20 s): leased for a minute.
    expect((await store.claimOrchestrationForPackaging(claimBy('node-a', 60_000)))?.id).toBe(record.id);
    // node-b's clock is 10 minutes ahead of node-a's: by its own clock the lease ended long ago.
    const ahead = packager({ owner: 'node-b', now: () => new Date(Date.now() + 10 * 60_000) });
    await ahead.start();
    await new Promise((r) => setTimeout(r, 400)); // 8 of its polls
    expect(await store.getOrchestration(record.id)).toMatchObject({ status: 'packaging' });
  });

  it('stop() kills a running npm install, leaves the job in packaging, and the next start finishes it', async () => {
    // A stand-in npm that never finishes, so the stop certainly lands during the install.
    const slowNpm = join(root, 'slow-npm.sh');
    writeFileSync(slowNpm, '#!/bin/sh\necho "resolving..."\nexec sleep 120\n', { mode: 0o755 });
    const p = packager({ envCache: new EnvCache({ envsDir: join(home, 'envs'), npmCommand: slowNpm }) });
    await p.start();
    const record = await submit(p, [
      IS_NUMBER_PKG,
      { path: 'main.js', content: "import n from 'is-number'; console.log(n(3));" },
    ]);
    for (;;) {
      if (logText(await store.getPackagingLog(record.id)).includes('resolving...')) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    await p.stop();
    expect((await store.getOrchestration(record.id))?.status).toBe('packaging');
    expect(logText(await store.getPackagingLog(record.id))).toContain('interrupted by a server stop');
    expect(readdirSync(join(home, 'envs'))).toEqual([]);

    const next = packager();
    await next.start();
    expect((await waitForStatus(record.id)).status).toBe('ready');
    expect(logText(await store.getPackagingLog(record.id))).toContain('packaging again');
    expect(await runEntry(next, record.id)).toBe('true\n');
  });

  it('stop() ends the loop: a zip submitted afterwards stays pending until a packager starts', async () => {
    const p = packager();
    await p.start();
    await p.stop();
    const record = await submit(p, [{ path: 'main.ts', content: 'console.log(1)' }]);
    // Give a still-running worker every chance to claim it (it was woken by submit).
    for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
    expect((await store.getOrchestration(record.id))?.status).toBe('pending_packaging');
    await expect(p.start()).rejects.toThrow(/already stopped/);
  });
});

describe('Packager keeps the compile inside the upload', () => {
  const SECRET = 'S3CRET-TOKEN-do-not-leak';
  const KEY = 'MASTERKEYBYTES';

  /** Host files next to the orchestrations, as `<home>/credentials.json` and `<home>/master.key` are. */
  function plantSecrets(): string {
    writeFileSync(join(home, 'credentials.json'), JSON.stringify({ token: SECRET }));
    writeFileSync(join(home, 'master.key'), `${KEY}\n`);
    const outside = join(root, 'secret.txt');
    writeFileSync(outside, SECRET);
    return outside;
  }

  /** Everything a workspace user can read about the orchestration: its error and its log. */
  async function visible(id: string): Promise<string> {
    const record = await store.getOrchestration(id);
    return `${record?.error ?? ''}\n${logText(await store.getPackagingLog(id))}`;
  }

  const refused: [string, string, (outside: string) => string][] = [
    [
      'a JSON file above the files',
      'main.ts',
      () => "import c from '../../../credentials.json';\nconsole.log(c.token);",
    ],
    [
      'a file above imported as text',
      'main.ts',
      () => "import k from '../../../master.key' with { type: 'text' };\nconsole.log(k);",
    ],
    [
      'a file above imported as JSON that does not parse (esbuild would quote it)',
      'main.ts',
      () => "import k from '../../../master.key' with { type: 'json' };\nconsole.log(k);",
    ],
    [
      'an absolute path',
      'main.ts',
      (outside) => `import s from '${outside}' with { type: 'text' };\nconsole.log(s);`,
    ],
    [
      'a require() of a file above',
      'main.js',
      () => "const c = require('../../../credentials.json');\nconsole.log(c);",
    ],
    [
      'a glob import reaching above',
      'main.js',
      () =>
        'const name = process.argv[2];\nconst m = await import(`../../../${name}.json`);\nconsole.log(m);',
    ],
  ];
  for (const [what, entry, source] of refused) {
    it(`ends in error, naming the import and quoting no secret, for ${what}`, async () => {
      const outside = plantSecrets();
      const p = packager();
      await p.start();
      const record = await submit(p, [{ path: entry, content: source(outside) }]);
      const done = await waitForStatus(record.id);
      const shown = await visible(record.id);
      expect(shown).not.toContain(SECRET);
      expect(shown).not.toContain(KEY);
      // No host path but the one the upload wrote itself (the absolute import).
      expect(shown).not.toContain(home);
      expect(existsSync(join(home, 'orchestrations', record.id, 'files', '.quoll', 'entry.mjs'))).toBe(false);
      expect(done.status).toBe('error');
      expect(done.error).toContain(`Compiling ${entry} failed`);
      expect(done.error).toMatch(/outside the orchestration’s files/);
    });
  }

  it('refuses a glob import reaching outside the same way whether or not host files match it', async () => {
    const source = [
      'const n = process.argv[2];',
      'const c = await import(`../../../credentials${n}.json`);',
      "const k = require('../../../master' + n + '.key');",
      'console.log(c, k);',
    ].join('\n');
    const outcome = async (): Promise<{ status: string; error: string | null }> => {
      const p = packager();
      await p.start();
      const record = await submit(p, [{ path: 'main.js', content: source }]);
      const done = await waitForStatus(record.id);
      const shown = await visible(record.id);
      expect(shown).not.toContain(SECRET);
      expect(shown).not.toContain(home);
      return { status: done.status, error: done.error };
    };
    plantSecrets();
    const withFiles = await outcome();
    rmSync(join(home, 'credentials.json'));
    rmSync(join(home, 'master.key'));
    const without = await outcome();
    expect(withFiles.status).toBe('error');
    expect(without).toEqual(withFiles);
    expect(withFiles.error).toMatch(/main\.js:2: .*outside the orchestration’s files is refused/);
  });

  it('still expands a glob import that stays inside the upload', async () => {
    const p = packager();
    await p.start();
    const record = await submit(p, [
      { path: 'data/a.json', content: '{"v":1}' },
      {
        path: 'main.js',
        content:
          'const n = process.argv[2] ?? "a";\nconst m = await import(`./data/${n}.json`);\nconsole.log(m);',
      },
    ]);
    const done = await waitForStatus(record.id);
    expect(done.status, done.error ?? '').toBe('ready');
  });

  it('ignores tsconfig.json settings that name files (extends, paths, baseUrl) and says so', async () => {
    plantSecrets();
    const p = packager();
    await p.start();
    const record = await submit(p, [
      {
        path: 'tsconfig.json',
        content: JSON.stringify({
          extends: '../../../master.key',
          compilerOptions: { baseUrl: '.', paths: { secret: ['../../../credentials.json'] } },
        }),
      },
      { path: 'main.ts', content: "import * as s from 'secret';\nconsole.log(typeof s);" },
    ]);
    const done = await waitForStatus(record.id);
    // `secret` stays a package import (resolved at run time), not the host file.
    expect(done.status).toBe('ready');
    const shown = await visible(record.id);
    expect(shown).toContain('tsconfig.json: ignored extends, compilerOptions.baseUrl, compilerOptions.paths');
    expect(shown).not.toContain(KEY);
    const entry = readFileSync(
      join(home, 'orchestrations', record.id, 'files', '.quoll', 'entry.mjs'),
      'utf8',
    );
    expect(entry).not.toContain(SECRET);
    expect(entry).toMatch(/from "secret"/);
  });

  it('still packages a multi-file upload: relative imports, a text import inside the zip, an npm package, a commented tsconfig', async () => {
    plantSecrets();
    const p = packager();
    await p.start();
    const record = await submit(p, [
      IS_NUMBER_PKG,
      {
        path: 'tsconfig.json',
        content:
          '{\n  // decorators, as TypeScript allows\n  "compilerOptions": { "experimentalDecorators": true, },\n}',
      },
      {
        path: 'main.ts',
        content: [
          "import isNumber from 'is-number';",
          "import { twice } from './lib/math.js';",
          "import note from './data/note.txt' with { type: 'text' };",
          "import cfg from './data/cfg.json';",
          'function tag(_t: unknown, _k: string): void {}',
          'class C { @tag m(): number { return twice(21); } }',
          'console.log(isNumber(1), new C().m(), note.trim(), cfg.n);',
        ].join('\n'),
      },
      {
        path: 'lib/math.ts',
        content: "import { one } from '../lib/one.js';\nexport const twice = (n: number) => n * 2 * one;",
      },
      { path: 'lib/one.ts', content: 'export const one = 1;' },
      { path: 'data/note.txt', content: 'inside the zip\n' },
      { path: 'data/cfg.json', content: '{"n": 7}' },
    ]);
    const done = await waitForStatus(record.id);
    expect(done).toMatchObject({ status: 'ready', error: null });
    expect(await runEntry(p, record.id)).toBe('true 42 inside the zip 7\n');
  });
});
