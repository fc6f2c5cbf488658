import { mkdtempSync, renameSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ConnectionSealer } from './connection-sealer.js';
import { FileKeyring, StaticKeyring } from './keyring.js';
import { NEXT_KEY_FILE, generateMasterKey, writeKeyFileExclusive } from './master-key.js';

const details = { host: 'https://example.com/xtest-1k.arrow', password: 'hunter2-very-secret', port: 5432 };

let home: string;
beforeEach(() => {
  home = mkdtempSync(join(tmpdir(), 'quoll-sealer-'));
});
afterEach(() => rmSync(home, { recursive: true, force: true }));

describe('ConnectionSealer', () => {
  it('opens what it sealed, and the ciphertext holds no detail value', () => {
    const sealer = new ConnectionSealer(new StaticKeyring(generateMasterKey()));
    const sealed = sealer.seal('c1', details);
    expect(sealer.open('c1', sealed)).toEqual(details);
    expect(sealed.keyId).toBe(sealer.currentKeyId());
    expect(sealed.blob.includes(Buffer.from('hunter2'))).toBe(false);
    expect(sealed.blob.includes(Buffer.from('example.com'))).toBe(false);
  });

  it('uses a fresh IV per value: sealing the same details twice gives different ciphertexts', () => {
    const sealer = new ConnectionSealer(new StaticKeyring(generateMasterKey()));
    const a = sealer.seal('c1', details);
    const b = sealer.seal('c1', details);
    expect(a.blob.subarray(1, 13).equals(b.blob.subarray(1, 13))).toBe(false);
    expect(a.blob.equals(b.blob)).toBe(false);
  });

  it('refuses a tampered ciphertext without revealing anything', () => {
    const sealer = new ConnectionSealer(new StaticKeyring(generateMasterKey()));
    const sealed = sealer.seal('c1', details);
    const blob = Buffer.from(sealed.blob);
    blob[blob.length - 1] = (blob[blob.length - 1] ?? 0) ^ 1;
    expect(() => sealer.open('c1', { keyId: sealed.keyId, blob })).toThrow(/fail authentication/);
    const tag = Buffer.from(sealed.blob);
    tag[15] = (tag[15] ?? 0) ^ 1;
    expect(() => sealer.open('c1', { keyId: sealed.keyId, blob: tag })).toThrow(/fail authentication/);
  });

  it('refuses a ciphertext moved to another connection id (the id is authenticated data)', () => {
    const sealer = new ConnectionSealer(new StaticKeyring(generateMasterKey()));
    const sealed = sealer.seal('c1', details);
    let caught: unknown;
    try {
      sealer.open('c2', sealed);
    } catch (err) {
      caught = err;
    }
    expect(caught).toMatchObject({ code: 'internal_error' });
    expect((caught as Error).message).not.toContain('hunter2');
  });

  it('refuses a value sealed under a key it does not hold, naming the key id', () => {
    const other = new ConnectionSealer(new StaticKeyring(generateMasterKey()));
    const sealed = other.seal('c1', details);
    const sealer = new ConnectionSealer(new StaticKeyring(generateMasterKey()));
    expect(() => sealer.open('c1', sealed)).toThrow(sealed.keyId);
  });

  it('opens values sealed under an older key it still holds', () => {
    const oldKey = generateMasterKey();
    const sealed = new ConnectionSealer(new StaticKeyring(oldKey)).seal('c1', details);
    const sealer = new ConnectionSealer(new StaticKeyring(generateMasterKey(), [oldKey]));
    expect(sealer.open('c1', sealed)).toEqual(details);
  });

  it('with a FileKeyring, reloads the key files when it meets an unknown key id', () => {
    const serverSealer = new ConnectionSealer(new FileKeyring({ home }));
    const next = generateMasterKey();
    // Another process (a rotation) writes a new key and seals with it.
    writeKeyFileExclusive(join(home, NEXT_KEY_FILE), next);
    const sealed = new ConnectionSealer(new StaticKeyring(next)).seal('c1', details);
    expect(serverSealer.open('c1', sealed)).toEqual(details);
  });

  it('with a FileKeyring, seals under the new key once master.key is replaced', () => {
    const serverSealer = new ConnectionSealer(new FileKeyring({ home }));
    const before = serverSealer.currentKeyId();
    const next = generateMasterKey();
    writeKeyFileExclusive(join(home, NEXT_KEY_FILE), next);
    renameSync(join(home, NEXT_KEY_FILE), join(home, 'master.key'));
    expect(before).not.toBe(next.id);
    expect(serverSealer.seal('c1', details).keyId).toBe(next.id);
  });
});
