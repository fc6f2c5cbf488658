import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync, existsSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { npmInstallEnv, pipInstallEnv } from '../orchestrations/install-env.js';
import { NODE_ENV_ALLOW } from '../runner/runtimes/node-runtime.js';
import { PYTHON_ENV_ALLOW } from '../runner/runtimes/python-runtime.js';
import {
  DECRYPT_ONLY_KEYS_ENV,
  MASTER_KEY_ENV,
  MasterKeyError,
  loadDecryptOnlyKeys,
  loadMasterKey,
  masterKeyId,
} from './master-key.js';

let home: string;
beforeEach(() => {
  home = mkdtempSync(join(tmpdir(), 'quoll-key-'));
});
afterEach(() => rmSync(home, { recursive: true, force: true }));

describe('loadMasterKey', () => {
  it('creates <home>/master.key with mode 0600 at first start and loads the same key afterwards', () => {
    const first = loadMasterKey({ home, env: {} });
    const path = join(home, 'master.key');
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(first.key.length).toBe(32);
    expect(Buffer.from(readFileSync(path, 'utf8').trim(), 'base64').equals(first.key)).toBe(true);
    const again = loadMasterKey({ home, env: {} });
    expect(again.id).toBe(first.id);
    expect(again.key.equals(first.key)).toBe(true);
  });

  it('creates the home directory when it does not exist yet', () => {
    const nested = join(home, 'a', 'b');
    loadMasterKey({ home: nested, env: {} });
    expect(existsSync(join(nested, 'master.key'))).toBe(true);
  });

  it('uses QUOLL_MASTER_KEY given as hex or base64 and writes no key file', () => {
    const bytes = Buffer.alloc(32, 7);
    const fromHex = loadMasterKey({ home, env: { QUOLL_MASTER_KEY: bytes.toString('hex') } });
    const fromBase64 = loadMasterKey({ home, env: { QUOLL_MASTER_KEY: `${bytes.toString('base64')}\n` } });
    const fromUrlSafe = loadMasterKey({ home, env: { QUOLL_MASTER_KEY: bytes.toString('base64url') } });
    for (const k of [fromHex, fromBase64, fromUrlSafe]) {
      expect(k.key.equals(bytes)).toBe(true);
      expect(k.id).toBe(masterKeyId(bytes));
    }
    expect(existsSync(join(home, 'master.key'))).toBe(false);
  });

  it.each([
    ['too short', 'c2VjcmV0LWtleQ=='],
    ['31 bytes of hex', 'ab'.repeat(31)],
    ['not base64', 'this is not a key at all!'],
    ['empty', ''],
  ])(
    'refuses a malformed QUOLL_MASTER_KEY (%s) with a clear error that does not echo it',
    (_label, value) => {
      let caught: unknown;
      try {
        loadMasterKey({ home, env: { QUOLL_MASTER_KEY: value } });
      } catch (err) {
        caught = err;
      }
      expect(caught).toBeInstanceOf(MasterKeyError);
      expect((caught as MasterKeyError).code).toBe('invalid_master_key');
      const message = (caught as Error).message;
      expect(message).toContain('QUOLL_MASTER_KEY');
      expect(message).toContain('openssl rand -base64 32');
      if (value !== '') expect(message).not.toContain(value);
      expect(existsSync(join(home, 'master.key'))).toBe(false);
    },
  );

  it('refuses a key file readable by group or others, naming the chmod fix', () => {
    loadMasterKey({ home, env: {} });
    const path = join(home, 'master.key');
    chmodSync(path, 0o644);
    expect(() => loadMasterKey({ home, env: {} })).toThrow(`chmod 600 ${path}`);
  });

  it('refuses a key file that does not hold a 32-byte key', () => {
    writeFileSync(join(home, 'master.key'), 'garbage\n', { mode: 0o600 });
    expect(() => loadMasterKey({ home, env: {} })).toThrow(MasterKeyError);
  });

  it('gives different keys different ids and the same key the same id', () => {
    expect(masterKeyId(Buffer.alloc(32, 1))).toBe(masterKeyId(Buffer.alloc(32, 1)));
    expect(masterKeyId(Buffer.alloc(32, 1))).not.toBe(masterKeyId(Buffer.alloc(32, 2)));
    expect(masterKeyId(Buffer.alloc(32, 1))).toMatch(/^[0-9a-f]{16}$/);
  });
});

describe('loadDecryptOnlyKeys', () => {
  const a = Buffer.alloc(32, 1);
  const b = Buffer.alloc(32, 2);

  it('is empty without QUOLL_MASTER_KEY_DECRYPT_ONLY (or with it blank)', () => {
    expect(loadDecryptOnlyKeys({})).toEqual([]);
    expect(loadDecryptOnlyKeys({ QUOLL_MASTER_KEY_DECRYPT_ONLY: ' ' })).toEqual([]);
  });

  it('reads keys separated by commas or white space, hex or base64', () => {
    const keys = loadDecryptOnlyKeys({
      QUOLL_MASTER_KEY_DECRYPT_ONLY: `${a.toString('hex')}, ${b.toString('base64')}\n`,
    });
    expect(keys.map((k) => k.id)).toEqual([masterKeyId(a), masterKeyId(b)]);
  });

  it('refuses a malformed entry with invalid_master_key, naming its position and never the value', () => {
    const bad = 'not-a-key-at-all';
    let caught: unknown;
    try {
      loadDecryptOnlyKeys({ QUOLL_MASTER_KEY_DECRYPT_ONLY: `${a.toString('hex')},${bad}` });
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(MasterKeyError);
    expect((caught as MasterKeyError).code).toBe('invalid_master_key');
    expect((caught as Error).message).toContain('key 2 of QUOLL_MASTER_KEY_DECRYPT_ONLY');
    expect((caught as Error).message).not.toContain(bad);
  });
});

describe('the key variables never reach user code', () => {
  it('task runs and package installs get neither QUOLL_MASTER_KEY nor QUOLL_MASTER_KEY_DECRYPT_ONLY', () => {
    // Runs get only the variables their runtime allows; installs only npm/pip settings. A
    // decrypt-only key opens every connection as well as the master key does.
    for (const name of [MASTER_KEY_ENV, DECRYPT_ONLY_KEYS_ENV]) {
      expect(NODE_ENV_ALLOW.test(name)).toBe(false);
      expect(PYTHON_ENV_ALLOW.test(name)).toBe(false);
      const env = { PATH: '/usr/bin', [name]: 'secret' };
      expect(Object.keys(npmInstallEnv(env))).not.toContain(name);
      expect(Object.keys(pipInstallEnv(env))).not.toContain(name);
    }
  });
});
