import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { QuollError } from '@quoll/client/errors';
import {
  DECRYPT_ONLY_KEYS_ENV,
  MASTER_KEY_ENV,
  MASTER_KEY_FILE,
  MasterKeyError,
  StaticKeyring,
  clusterKeyStatus,
  createKeyring,
  loadDecryptOnlyKeys,
  parseMasterKey,
  retireOldKey,
  rotateClusterKey,
  rotateKey,
} from '../../connections/index.js';
import type {
  ClusterKeyStatus,
  ConnectionStore,
  RotateClusterKeyResult,
  RotateKeyResult,
} from '../../connections/index.js';
import { ApiError } from '../../errors/index.js';
import { openKeyCheckStore, openStore } from '../../store/index.js';
import type { StoreConfig } from '../../store/index.js';
import { keyStatusLines } from './key-status-lines.js';

// The CLI's entry to key rotation: it composes the store with the connections domain,
// which is why it lives at the edge (cli/) and not in connections/.

/** Options of `quoll admin rotate-key`. */
export interface RotateKeyCommandOptions {
  /** The instance's home directory. */
  home: string;
  /** The metadata database. @default `<home>/quoll.db` */
  databasePath?: string;
  /** The process environment. @default process.env */
  env?: NodeJS.ProcessEnv;
  /** Where progress lines go. @default a line on stdout */
  print?: (line: string) => void;
  /** Only finish an earlier rotation: re-seal stragglers and delete `master.key.old`. @default false */
  retireOld?: boolean;
}

/**
 * `quoll admin rotate-key [--home DIR] [--retire-old]`: re-encrypts every connection under a
 * new master key. Safe while the server runs (SQLite WAL; the server picks up the new key
 * files by itself). Returns the rotation result (null with `retireOld`).
 * @example
 * await runRotateKeyCommand({ home: config.home });
 */
export async function runRotateKeyCommand(options: RotateKeyCommandOptions): Promise<RotateKeyResult | null> {
  const env = options.env ?? process.env;
  const print = options.print ?? ((line: string) => void process.stdout.write(`${line}\n`));
  const databasePath = options.databasePath ?? join(options.home, 'quoll.db');
  if (!existsSync(databasePath)) {
    // Opening would create an empty database: almost certainly the wrong --home.
    throw new Error(
      `No Quoll database at ${databasePath}: pass the --home of the instance whose key to rotate.`,
    );
  }
  const stores = await openStore({ kind: 'sqlite', path: databasePath });
  try {
    return await rotateHome(options, stores.connections, env, print);
  } catch (err) {
    // A catalogue code prints as `error [code]: …` (exit code 2).
    if (err instanceof ApiError) throw new QuollError(err.code, err.message, 0, err.details);
    throw err;
  } finally {
    await stores.close();
  }
}

/** The embedded rotation (or, with `retireOld`, its end) on the home's store. */
async function rotateHome(
  options: RotateKeyCommandOptions,
  store: ConnectionStore,
  env: NodeJS.ProcessEnv,
  print: (line: string) => void,
): Promise<RotateKeyResult | null> {
  if (options.retireOld) {
    const { resealed, removed } = await retireOldKey({ home: options.home, store, env });
    print(`re-sealed ${resealed} connection(s) still under an old key`);
    print(removed ? 'removed master.key.old' : 'no master.key.old to remove');
    return null;
  }
  const result = await rotateKey({
    home: options.home,
    store,
    env,
    onProgress: (event) => {
      if (event.step === 'next_key_ready') {
        print(
          `${event.resumed ? 'resuming' : 'starting'} rotation: key ${event.oldKeyId} -> ${event.newKeyId}`,
        );
      } else if (event.step === 'promoted') {
        print(`master.key now holds key ${event.newKeyId}; the old key is kept as master.key.old`);
      }
    },
  });
  print(`re-sealed ${result.resealed} connection(s) under key ${result.newKeyId}`);
  print('after the server restarts, remove the old key with: quoll admin rotate-key --retire-old');
  return result;
}

/** Options of `quoll admin rotate-key` on a cluster. */
export interface ClusterRotateKeyCommandOptions {
  /** A home whose `master.key` (and `master.key.old` / `.next`) hold the keys, when `QUOLL_MASTER_KEY` is unset. */
  home: string;
  /** The cluster's database. */
  database: Extract<StoreConfig, { kind: 'postgres' }>;
  /** The process environment (`QUOLL_MASTER_KEY`, `QUOLL_MASTER_KEY_DECRYPT_ONLY`). @default process.env */
  env?: NodeJS.ProcessEnv;
  /** Where progress lines go. @default a line on stdout */
  print?: (line: string) => void;
}

/**
 * `quoll admin rotate-key --database postgres://…`: re-seals a cluster's connections under
 * the new master key and retires the old one (see `rotateClusterKey`), with the keys given
 * the way a node is given them. Safe while the nodes serve; run it again to resume. Errors
 * carry catalogue codes (`key_rotation_pending`, `master_key_mismatch`, `master_key_unknown`,
 * `master_key_retired`, `invalid_master_key`), printed by the CLI as `error [code]: …`.
 * @example
 * await runClusterRotateKeyCommand({ home, database: { kind: 'postgres', url } });
 */
export async function runClusterRotateKeyCommand(
  options: ClusterRotateKeyCommandOptions,
): Promise<RotateClusterKeyResult> {
  const env = options.env ?? process.env;
  const print = options.print ?? ((line: string) => void process.stdout.write(`${line}\n`));
  try {
    if (env[MASTER_KEY_ENV] === undefined && !existsSync(join(options.home, MASTER_KEY_FILE))) {
      // createKeyring would make a fresh key here: never what a rotation means.
      throw new MasterKeyError(
        'invalid_master_key',
        `No master key to rotate to: set ${MASTER_KEY_ENV} to the new key and ${DECRYPT_ONLY_KEYS_ENV} to the old one, as on the nodes (or pass the --home of a node whose ${MASTER_KEY_FILE} holds the new key).`,
      );
    }
    const keyring = createKeyring({ home: options.home, env });
    const stores = await openStore(options.database);
    try {
      const [newKeyId, ...others] = keyring.keyIds();
      print(
        `rotating to key ${newKeyId}${others.length > 0 ? ` (old keys held: ${others.join(', ')})` : ''}`,
      );
      let resealed = 0;
      const result = await rotateClusterKey({
        keyring,
        keyCheck: stores.keyCheck,
        store: stores.connections,
        onProgress: (event) => {
          if (event.step === 'key_check_resealed') {
            print(
              `the database's key check is sealed under key ${event.newKeyId} now: a node holding only key ${event.oldKeyId} can no longer start`,
            );
          } else if (event.step === 'resealed') {
            resealed += 1;
            if (resealed % 100 === 0) print(`re-sealed ${resealed} connection(s)`);
          } else if (event.keyIds.length > 0) {
            print(
              `retired key(s) ${event.keyIds.join(', ')}: nothing is sealed under them and a node started with one is refused (master_key_retired)`,
            );
          }
        },
      });
      print(
        `re-sealed ${result.resealed} connection(s) under key ${result.newKeyId}; every connection is under it`,
      );
      if (result.retiredKeyIds.length === 0) {
        print(
          `no key retired: nothing was sealed under another key than ${result.newKeyId}. If the nodes are being moved to a new key, give it to this command as ${MASTER_KEY_ENV} once every node seals with it.`,
        );
      } else {
        print(
          `now remove the old key from every node (${DECRYPT_ONLY_KEYS_ENV}, or <home>/master.key.old and master.key.next) and restart them one at a time`,
        );
      }
      return result;
    } finally {
      await stores.close();
    }
  } catch (err) {
    // A catalogue code prints as `error [code]: …` (exit code 2).
    if (err instanceof ApiError) throw new QuollError(err.code, err.message, 0, err.details);
    throw err;
  }
}

/**
 * The exit code of `quoll admin rotate-key --status` when a rotation cannot proceed now (the
 * status is printed all the same; 0 when it can). An error ends otherwise: 1 when the database
 * cannot be reached, 2 when the command refuses its input (a bad key, say).
 */
export const ROTATION_BLOCKED_EXIT_CODE = 3;

/** Options of `quoll admin rotate-key --status`. */
export interface ClusterKeyStatusCommandOptions {
  /** The cluster's database. */
  database: Extract<StoreConfig, { kind: 'postgres' }>;
  /**
   * The process environment: when `QUOLL_MASTER_KEY` is set (with `QUOLL_MASTER_KEY_DECRYPT_ONLY`,
   * as for the rotation), the status is that of a rotation given those keys. @default process.env
   */
  env?: NodeJS.ProcessEnv;
  /** Print JSON (the {@link ClusterKeyStatus}) instead of lines. @default false */
  json?: boolean;
  /** Where output goes. @default a line on stdout */
  print?: (line: string) => void;
}

/**
 * `quoll admin rotate-key --status --database postgres://…`: per live node the key it seals with
 * and the keys it holds, each key id's state (active, retiring, retired) and connection count, and
 * whether a rotation can proceed or what blocks it (see `clusterKeyStatus`). Reads only; key ids,
 * never keys. Returns the status.
 * @example
 * await runClusterKeyStatusCommand({ database: { kind: 'postgres', url }, json: true });
 */
export async function runClusterKeyStatusCommand(
  options: ClusterKeyStatusCommandOptions,
): Promise<ClusterKeyStatus> {
  const env = options.env ?? process.env;
  const print = options.print ?? ((line: string) => void process.stdout.write(`${line}\n`));
  try {
    // Only keys given in the environment (a home's key file would be made when missing).
    const keyring =
      env[MASTER_KEY_ENV] === undefined
        ? undefined
        : new StaticKeyring(
            parseMasterKey(env[MASTER_KEY_ENV], `the ${MASTER_KEY_ENV} environment variable`),
            loadDecryptOnlyKeys(env),
          );
    // Without migrating: --status changes nothing, not even the schema of a mistyped database
    // (or of a cluster whose nodes run an older release than this CLI).
    const stores = await openKeyCheckStore(options.database);
    try {
      const status = await clusterKeyStatus(stores.keyCheck, keyring === undefined ? {} : { keyring });
      if (options.json === true) print(JSON.stringify(status, null, 2));
      else for (const line of keyStatusLines(status)) print(line);
      return status;
    } finally {
      await stores.close();
    }
  } catch (err) {
    if (err instanceof ApiError) throw new QuollError(err.code, err.message, 0, err.details);
    throw err;
  }
}
