import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ConnectionSealer } from './connection-sealer.js';
import { StaticKeyring, createKeyring } from './keyring.js';
import { MasterKeyError, loadMasterKey, parseMasterKey } from './master-key.js';

let home: string;
beforeEach(() => {
  home = mkdtempSync(join(tmpdir(), 'quoll-keyring-'));
});
afterEach(() => rmSync(home, { recursive: true, force: true }));

const oldText = Buffer.alloc(32, 1).toString('base64');
const newText = Buffer.alloc(32, 2).toString('hex');
const oldKey = parseMasterKey(oldText, 'test');
const newKey = parseMasterKey(newText, 'test');

describe('createKeyring with QUOLL_MASTER_KEY_DECRYPT_ONLY', () => {
  it('opens with the decrypt-only keys and seals with QUOLL_MASTER_KEY alone', () => {
    const sealedOld = new ConnectionSealer(new StaticKeyring(oldKey)).seal('c1', { a: 1 });
    const keyring = createKeyring({
      home,
      env: { QUOLL_MASTER_KEY: newText, QUOLL_MASTER_KEY_DECRYPT_ONLY: oldText },
    });
    const sealer = new ConnectionSealer(keyring);
    expect(sealer.open('c1', sealedOld)).toEqual({ a: 1 });
    expect(sealer.seal('c2', { b: 2 }).keyId).toBe(newKey.id);
    expect(keyring.keyIds()).toEqual([newKey.id, oldKey.id]);
  });

  it('adds the decrypt-only keys to a home keyring too', () => {
    const fileKey = loadMasterKey({ home, env: {} });
    const keyring = createKeyring({ home, env: { QUOLL_MASTER_KEY_DECRYPT_ONLY: `${oldText},${newText}` } });
    expect(keyring.current().id).toBe(fileKey.id);
    expect(keyring.find(oldKey.id)?.id).toBe(oldKey.id);
    expect(keyring.find(newKey.id)?.id).toBe(newKey.id);
    expect(keyring.keyIds()).toEqual([fileKey.id, oldKey.id, newKey.id]);
  });

  it('refuses a malformed decrypt-only key before creating a key file', () => {
    expect(() => createKeyring({ home, env: { QUOLL_MASTER_KEY_DECRYPT_ONLY: 'nope' } })).toThrow(
      MasterKeyError,
    );
    expect(existsSync(join(home, 'master.key'))).toBe(false);
  });
});
