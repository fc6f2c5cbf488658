import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import yauzl from 'yauzl';
import { ERROR_CODES } from '@quoll/client/wire';
import { buildPythonSdk, readProjectMetadata, renderErrorCodesModule } from '../scripts/build-python-sdk.js';
import { locatePythonSdk } from '../packages/quoll/src/python-sdk/index.js';

const root = fileURLToPath(new URL('../', import.meta.url));

/** Every entry of a zip: name → bytes. */
function readZip(path: string): Promise<Map<string, Buffer>> {
  return new Promise((resolve, reject) => {
    yauzl.open(path, { lazyEntries: true }, (err, zip) => {
      if (err) return reject(err);
      const out = new Map<string, Buffer>();
      zip.on('entry', (entry: yauzl.Entry) => {
        zip.openReadStream(entry, (e, stream) => {
          if (e) return reject(e);
          const chunks: Buffer[] = [];
          stream.on('data', (c: Buffer) => chunks.push(c));
          stream.on('end', () => {
            out.set(entry.fileName, Buffer.concat(chunks));
            zip.readEntry();
          });
        });
      });
      zip.on('end', () => resolve(out));
      zip.readEntry();
    });
  });
}

describe('the Python client as the server ships it', () => {
  const dirs: string[] = [];
  afterAll(async () => {
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });

  it('carries exactly the error catalogue of the TypeScript side (generated, committed, equal)', () => {
    const committed = readFileSync(join(root, 'packages/python/src/quoll/_error_codes.py'), 'utf8');
    expect(committed).toBe(renderErrorCodesModule());
    for (const code of Object.keys(ERROR_CODES)) expect(committed).toContain(`"${code}": {"status"`);
  });

  it('has the version of the npm packages', () => {
    const meta = readProjectMetadata(readFileSync(join(root, 'packages/python/pyproject.toml'), 'utf8'));
    const npm = JSON.parse(readFileSync(join(root, 'packages/client/package.json'), 'utf8')) as {
      version: string;
    };
    expect(meta.version).toBe(npm.version);
    expect(meta.requiresPython).toBe('>=3.9');
  });

  it('builds a reproducible wheel whose RECORD matches its files', async () => {
    const a = await mkdtemp(join(tmpdir(), 'quoll-wheel-'));
    const b = await mkdtemp(join(tmpdir(), 'quoll-wheel-'));
    dirs.push(a, b);
    const first = await buildPythonSdk(a);
    const second = await buildPythonSdk(b);
    expect(second.sha256).toBe(first.sha256);
    const wheel = await readFile(join(a, first.wheelFile));
    expect(createHash('sha256').update(wheel).digest('hex')).toBe(first.sha256);
    const entries = await readZip(join(a, first.wheelFile));
    const distInfo = `quoll-${first.version}.dist-info`;
    expect([...entries.keys()]).toEqual(
      expect.arrayContaining([
        'quoll/__init__.py',
        'quoll/object.py',
        'quoll/py.typed',
        `${distInfo}/METADATA`,
      ]),
    );
    expect(String(entries.get(`${distInfo}/WHEEL`))).toContain('Tag: py3-none-any');
    expect(String(entries.get(`${distInfo}/METADATA`))).toContain('Requires-Python: >=3.9');
    const record = String(entries.get(`${distInfo}/RECORD`))
      .trim()
      .split('\n');
    expect(record).toHaveLength(entries.size);
    for (const line of record) {
      const [name, hash, size] = line.split(',');
      if (name === `${distInfo}/RECORD`) continue;
      const bytes = entries.get(name ?? '') as Buffer;
      expect(hash).toBe(`sha256=${createHash('sha256').update(bytes).digest('base64url')}`);
      expect(Number(size)).toBe(bytes.length);
    }
  });

  it('is found by the server where npm run build put it', () => {
    const sdk = locatePythonSdk();
    expect(sdk).not.toBeNull();
    expect(sdk?.wheelFile).toMatch(/^quoll-\d+\.\d+\.\d+-py3-none-any\.whl$/);
    expect(readFileSync(join(sdk?.libDir ?? '', 'quoll', '__init__.py'), 'utf8')).toContain('__version__');
  });
});
