import { statSync } from 'node:fs';
import { join } from 'node:path';
import {
  MASTER_KEY_ENV,
  MASTER_KEY_FILE,
  NEXT_KEY_FILE,
  OLD_KEY_FILE,
  loadDecryptOnlyKeys,
  loadMasterKey,
  readKeyFile,
} from './master-key.js';
import type { LoadMasterKeyOptions, MasterKey } from './master-key.js';

/** The master keys a sealer may use: one to seal with, any number to open with, by key id. */
export interface Keyring {
  /** The key new values are sealed with. */
  current(): MasterKey;
  /** The key with this id, or undefined; a keyring backed by files may reload them first. */
  find(keyId: string): MasterKey | undefined;
  /** The ids of every key held, the current one first. */
  keyIds(): string[];
}

/** A keyring over fixed keys (the `QUOLL_MASTER_KEY` case, and rotation's writer). */
export class StaticKeyring implements Keyring {
  readonly #current: MasterKey;
  readonly #byId: ReadonlyMap<string, MasterKey>;

  /**
   * @param current the key to seal with.
   * @param others further keys that may open older values.
   * @default others []
   */
  constructor(current: MasterKey, others: readonly MasterKey[] = []) {
    this.#current = current;
    this.#byId = new Map([...others, current].map((k) => [k.id, k]));
  }

  /** The key to seal with. */
  current(): MasterKey {
    return this.#current;
  }

  /** The key with this id, if held. */
  find(keyId: string): MasterKey | undefined {
    return this.#byId.get(keyId);
  }

  /** The ids of every key held, current first. */
  keyIds(): string[] {
    return [this.#current.id, ...[...this.#byId.keys()].filter((id) => id !== this.#current.id)];
  }
}

/**
 * The keyring of a home directory: `master.key` (created at first start) seals; it,
 * `master.key.next` / `master.key.old` when present, and the `decryptOnly` keys open.
 *
 * It follows a key rotation run by another process (`quoll admin rotate-key` while the
 * server runs): it reloads the files when asked for an unknown key id, and before each seal
 * when `master.key` has been replaced, so a running server both reads re-sealed rows and
 * seals new ones under the new key without a restart.
 */
export class FileKeyring implements Keyring {
  readonly #home: string;
  readonly #decryptOnly: readonly MasterKey[];
  #current: MasterKey;
  #byId = new Map<string, MasterKey>();
  #signature: string | null;

  /**
   * Loads (creating if needed) `<home>/master.key` and any rotation key files.
   * @param options.decryptOnly further keys that open values (`QUOLL_MASTER_KEY_DECRYPT_ONLY`).
   * @default options.decryptOnly []
   */
  constructor(options: { home: string; decryptOnly?: readonly MasterKey[] }) {
    this.#home = options.home;
    this.#decryptOnly = options.decryptOnly ?? [];
    // loadMasterKey with an empty env: the file is the only source for this keyring.
    this.#current = loadMasterKey({ home: options.home, env: {} });
    this.#signature = this.#currentSignature();
    this.reload();
  }

  /** The key to seal with; reloads first if `master.key` was replaced since the last load. */
  current(): MasterKey {
    const signature = this.#currentSignature();
    if (signature !== null && signature !== this.#signature) this.reload();
    return this.#current;
  }

  /** The key with this id; an unknown id triggers one reload of the key files. */
  find(keyId: string): MasterKey | undefined {
    const known = this.#byId.get(keyId);
    if (known) return known;
    this.reload();
    return this.#byId.get(keyId);
  }

  /** The ids of every key held, current first. */
  keyIds(): string[] {
    return [this.#current.id, ...[...this.#byId.keys()].filter((id) => id !== this.#current.id)];
  }

  /**
   * Re-reads `master.key`, `master.key.next` and `master.key.old`. Keys already held stay
   * held, so a value sealed under a key that has since been retired from disk still opens in
   * this process.
   */
  reload(): void {
    // Read the signature before the file: if it changes in between, the next call reloads again.
    const signature = this.#currentSignature();
    const current = readKeyFile(join(this.#home, MASTER_KEY_FILE));
    // A vanished master.key is not a reason to forget the key we hold (never create one here).
    if (current) {
      this.#current = current;
      this.#signature = signature;
    }
    const byId = new Map(this.#byId);
    byId.set(this.#current.id, this.#current);
    for (const key of this.#decryptOnly) byId.set(key.id, key);
    for (const name of [NEXT_KEY_FILE, OLD_KEY_FILE]) {
      const key = readKeyFile(join(this.#home, name));
      if (key) byId.set(key.id, key);
    }
    this.#byId = byId;
  }

  #currentSignature(): string | null {
    try {
      const s = statSync(join(this.#home, MASTER_KEY_FILE));
      return `${s.ino}:${s.size}:${s.mtimeMs}:${s.ctimeMs}`;
    } catch {
      return null;
    }
  }
}

/**
 * The keyring for a server: a fixed key when `QUOLL_MASTER_KEY` is set, else the home's key
 * files; either way the keys of `QUOLL_MASTER_KEY_DECRYPT_ONLY` open values too (never seal).
 * @example
 * const sealer = new ConnectionSealer(createKeyring({ home: config.home, env: process.env }));
 */
export function createKeyring(options: LoadMasterKeyOptions): Keyring {
  // Parsed first: a malformed decrypt-only key stops the start before a key file is created.
  const decryptOnly = loadDecryptOnlyKeys(options.env);
  if (options.env[MASTER_KEY_ENV] !== undefined)
    return new StaticKeyring(loadMasterKey(options), decryptOnly);
  return new FileKeyring({ home: options.home, decryptOnly });
}
