import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { retireOldKey, rotateKey } from '../../connections/index.js';
import type { RotateKeyResult } from '../../connections/index.js';
import { openStore } from '../../store/index.js';

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
    const store = stores.connections;
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
  } finally {
    await stores.close();
  }
}
