import { renameSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { ConnectionSealer } from './connection-sealer.js';
import type { ConnectionStore } from './connection-store.js';
import { FileKeyring, StaticKeyring } from './keyring.js';
import {
  MASTER_KEY_ENV,
  MASTER_KEY_FILE,
  MasterKeyError,
  NEXT_KEY_FILE,
  OLD_KEY_FILE,
  fsyncDirectory,
  generateMasterKey,
  isNotFound,
  readKeyFile,
  replaceKeyFile,
  writeKeyFileExclusive,
} from './master-key.js';
import type { MasterKey } from './master-key.js';
import { resealConnections } from './reseal-connections.js';

/** One step of a key rotation, reported as it happens. */
export type RotateKeyProgress =
  | { step: 'next_key_ready'; oldKeyId: string; newKeyId: string; resumed: boolean }
  | { step: 'resealed'; connectionId: string; newKeyId: string }
  | { step: 'promoted'; oldKeyId: string; newKeyId: string };

/** Options of `rotateKey`. */
export interface RotateKeyOptions {
  /** The home directory holding `master.key`. */
  home: string;
  /** The store of the same instance (it may be in use by a running server). */
  store: ConnectionStore;
  /** The process environment: rotation refuses to run when `QUOLL_MASTER_KEY` supplies the key. */
  env: NodeJS.ProcessEnv;
  /** Rows listed per query while re-sealing. @default 100 */
  batchSize?: number;
  /** The new key. @default a fresh random key, or the one in `master.key.next` when resuming */
  newKey?: MasterKey;
  /** Called after each step (each re-sealed row, each file change). @default no-op */
  onProgress?: (event: RotateKeyProgress) => void | Promise<void>;
}

/** What a rotation did. */
export interface RotateKeyResult {
  oldKeyId: string;
  newKeyId: string;
  /** Rows re-sealed under the new key. */
  resealed: number;
  /** Whether it finished a rotation that had been interrupted (`master.key.next` was present). */
  resumed: boolean;
  /** Where the replaced key is kept until `retireOldKey`. */
  oldKeyFile: string;
}

/**
 * Re-encrypts every connection under a new master key without stopping readers:
 *
 * 1. the new key is written to `master.key.next` (mode 0600), or taken from there when a
 *    previous rotation was interrupted (rotation is resumable: just run it again);
 * 2. every row not sealed under the new key is re-sealed, one row per transaction (compare
 *    and set on its key id, so a concurrent change is never overwritten);
 * 3. the current key is saved as `master.key.old` and `master.key.next` is renamed onto
 *    `master.key` (atomic, so `master.key` always exists);
 * 4. rows a running server sealed under the old key meanwhile are re-sealed.
 *
 * Readers keep working throughout because keyrings hold keys by id and reload the key
 * files when they meet an unknown id; a running server seals new rows under the new key
 * as soon as `master.key` is replaced. `master.key.old` stays so that a row sealed in the
 * instant of the switch is never lost; remove it with `retireOldKey` (after a server restart,
 * or whenever no other process may still seal with the old key).
 * @example
 * const result = await rotateKey({ home, store, env: process.env });
 */
export async function rotateKey(options: RotateKeyOptions): Promise<RotateKeyResult> {
  refuseEnvKey(options.env);
  const { home, store } = options;
  const batchSize = options.batchSize ?? 100;
  const report = options.onProgress ?? (() => undefined);
  const keyring = new FileKeyring({ home });
  const oldKey = keyring.current();

  const nextPath = join(home, NEXT_KEY_FILE);
  let newKey = readKeyFile(nextPath);
  const resumed = newKey !== null;
  if (newKey && options.newKey && newKey.id !== options.newKey.id) {
    throw new MasterKeyError(
      'key_rotation_pending',
      `${nextPath} holds another key than the one given: an interrupted rotation is pending. Run the rotation again without a new key to finish it.`,
    );
  }
  if (!newKey) {
    newKey = options.newKey ?? generateMasterKey();
    if (!writeKeyFileExclusive(nextPath, newKey)) {
      throw new MasterKeyError(
        'key_rotation_pending',
        `${nextPath} appeared while this rotation started: is another rotation running? Wait for it to finish.`,
      );
    }
  }
  if (newKey.id === oldKey.id) {
    throw new MasterKeyError(
      'invalid_master_key',
      `The new master key is the current one (key id ${oldKey.id}): give a different key.`,
    );
  }
  // Make the new key known to this process's reader (other processes reload on demand).
  keyring.reload();
  await report({ step: 'next_key_ready', oldKeyId: oldKey.id, newKeyId: newKey.id, resumed });

  const reader = new ConnectionSealer(keyring);
  const writer = new ConnectionSealer(new StaticKeyring(newKey));
  let resealed = await resealAll(store, reader, writer, batchSize, report);

  replaceKeyFile(join(home, OLD_KEY_FILE), oldKey);
  renameSync(nextPath, join(home, MASTER_KEY_FILE));
  fsyncDirectory(home);
  await report({ step: 'promoted', oldKeyId: oldKey.id, newKeyId: newKey.id });

  // A server that sealed with the old key just before the rename left rows behind: sweep again.
  keyring.reload();
  resealed += await resealAll(store, reader, writer, batchSize, report);
  return {
    oldKeyId: oldKey.id,
    newKeyId: newKey.id,
    resealed,
    resumed,
    oldKeyFile: join(home, OLD_KEY_FILE),
  };
}

/** Options of `retireOldKey`. */
export interface RetireOldKeyOptions {
  home: string;
  store: ConnectionStore;
  env: NodeJS.ProcessEnv;
  /** Rows listed per query while re-sealing. @default 100 */
  batchSize?: number;
}

/**
 * Finishes a rotation: re-seals any row still not under the current key, then deletes
 * `master.key.old`. Returns how many rows it re-sealed and whether a file was removed.
 */
export async function retireOldKey(
  options: RetireOldKeyOptions,
): Promise<{ resealed: number; removed: boolean }> {
  refuseEnvKey(options.env);
  const keyring = new FileKeyring({ home: options.home });
  const reader = new ConnectionSealer(keyring);
  const writer = new ConnectionSealer(new StaticKeyring(keyring.current()));
  const resealed = await resealAll(options.store, reader, writer, options.batchSize ?? 100, () => undefined);
  try {
    unlinkSync(join(options.home, OLD_KEY_FILE));
  } catch (err) {
    if (isNotFound(err)) return { resealed, removed: false };
    throw err;
  }
  fsyncDirectory(options.home);
  return { resealed, removed: true };
}

/** Re-seals, one row per statement, every row not sealed under the writer's key. */
function resealAll(
  store: ConnectionStore,
  reader: ConnectionSealer,
  writer: ConnectionSealer,
  batchSize: number,
  report: (event: RotateKeyProgress) => void | Promise<void>,
): Promise<number> {
  const newKeyId = writer.currentKeyId();
  return resealConnections(
    store,
    newKeyId,
    batchSize,
    (row) => writer.seal(row.id, reader.open(row.id, row.sealed)),
    (connectionId) => report({ step: 'resealed', connectionId, newKeyId }),
  );
}

function refuseEnvKey(env: NodeJS.ProcessEnv): void {
  if (env[MASTER_KEY_ENV] !== undefined) {
    throw new MasterKeyError(
      'invalid_master_key',
      `${MASTER_KEY_ENV} is set, so the master key is not in a key file this command can rotate. ` +
        `Unset ${MASTER_KEY_ENV} (and move the key into <home>/${MASTER_KEY_FILE}) to rotate with this command.`,
    );
  }
}
