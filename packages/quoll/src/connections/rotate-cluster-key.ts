import { ConnectionSealer } from './connection-sealer.js';
import type { ConnectionStore } from './connection-store.js';
import type { Keyring } from './keyring.js';
import { UNREPORTED_KEY_ID, opensKeyCheck, sealKeyCheck } from './master-key-check.js';
import type { KeyCheckStore, NodeKeyReport } from './master-key-check.js';
import { DECRYPT_ONLY_KEYS_ENV, MASTER_KEY_ENV, MasterKeyError } from './master-key.js';
import { resealConnections } from './reseal-connections.js';

/** One step of a cluster key rotation, reported as it happens. */
export type RotateClusterKeyProgress =
  | { step: 'key_check_resealed'; oldKeyId: string; newKeyId: string }
  | { step: 'resealed'; connectionId: string; oldKeyId: string; newKeyId: string }
  /** `keyIds`: the keys this run retired (none when an earlier run did, or nothing used another key). */
  | { step: 'retired'; keyIds: string[]; newKeyId: string };

/** Options of {@link rotateClusterKey}. */
export interface RotateClusterKeyOptions {
  /**
   * The keys, as a node holds them: the current key is the new one (`QUOLL_MASTER_KEY` or
   * `<home>/master.key`), the old ones open (`QUOLL_MASTER_KEY_DECRYPT_ONLY`, key files).
   */
  keyring: Keyring;
  /** The cluster's key check, retired keys and node reports. */
  keyCheck: KeyCheckStore;
  /** The cluster's connections (nodes may be using them meanwhile). */
  store: ConnectionStore;
  /** Rows listed per query. @default 100 */
  batchSize?: number;
  /** The time, ISO 8601. @default the clock */
  now?: () => string;
  /** Called after each step. @default no-op */
  onProgress?: (event: RotateClusterKeyProgress) => void | Promise<void>;
}

/** What a cluster rotation did. */
export interface RotateClusterKeyResult {
  newKeyId: string;
  /** Connections re-sealed by this run (a resumed run counts only its own). */
  resealed: number;
  /** Keys retired by this run or before it: nothing is sealed under them, no node may seal with them. */
  retiredKeyIds: string[];
}

/** How many times new rows under an old key are swept before giving up (each sweep re-seals them). */
const RETIRE_ATTEMPTS = 3;

/**
 * Re-seals a cluster's connections under its new master key and retires the old keys, while
 * the nodes serve. Run it once every node holds both keys and seals with the new one (the
 * rolling restarts before it); run it again after an interruption to resume:
 *
 * 1. refuses, changing nothing, when its keys do not open the database's key check
 *    (`master_key_mismatch`) or while a live node seals with another key (`key_rotation_pending`);
 * 2. re-seals the database's key check under the new key (from then on a node holding only the
 *    old key is refused at its start: `master_key_mismatch`);
 * 3. re-seals every connection not under the new key, one row per statement, compare and set
 *    on its key id, so a concurrent change is never overwritten;
 * 4. in one transaction that also admits starting nodes, checks that no connection and no live
 *    node uses another key and records the old keys as retired: a node started with one of
 *    them is refused (`master_key_retired`), and they can be dropped from every node.
 * @example
 * await rotateClusterKey({ keyring: createKeyring({ home, env }), keyCheck: stores.keyCheck, store: stores.connections });
 */
export async function rotateClusterKey(options: RotateClusterKeyOptions): Promise<RotateClusterKeyResult> {
  const { keyring, keyCheck, store } = options;
  const now = options.now ?? (() => new Date().toISOString());
  const report = options.onProgress ?? (() => undefined);
  const batchSize = options.batchSize ?? 100;
  const sealer = new ConnectionSealer(keyring);
  const newKeyId = keyring.current().id;

  const retired = await keyCheck.listRetiredKeys();
  const gone = retired.find((r) => r.keyId === newKeyId);
  if (gone) {
    throw new MasterKeyError(
      'master_key_retired',
      `The key given as the new master key (key id ${newKeyId}) was retired by an earlier rotation (${gone.at}); a retired key is never used again. Give a fresh key as ${MASTER_KEY_ENV} (e.g. \`openssl rand -base64 32\`).`,
      { keyId: newKeyId, retiredAt: gone.at },
    );
  }
  const check = await keyCheck.ensureKeyCheck(sealKeyCheck(sealer), now());
  if (!opensKeyCheck(sealer, check)) {
    throw new MasterKeyError(
      'master_key_mismatch',
      `None of the keys given (key ids ${keyring.keyIds().join(', ')}) opens the database's key check (key id ${check.keyId}): give this command the keys the nodes hold — the new key as ${MASTER_KEY_ENV}, the old one in ${DECRYPT_ONLY_KEYS_ENV}.`,
      { keyIds: keyring.keyIds(), databaseKeyId: check.keyId },
    );
  }
  refusePending(await keyCheck.nodesNotSealingWith(newKeyId), newKeyId, 'before re-sealing anything');
  // Only keys something was sealed under are retired: a decrypt-only key given to a command run
  // too early (the next key, not yet current) must stay usable. The key check's previous key is
  // remembered by the store (a resumed run may find no row under it).
  const oldKeyIds = new Set<string>();
  if (check.keyId !== newKeyId) {
    // Compare and set: of two rotations running at once, both end with the check under the key.
    if (await keyCheck.replaceKeyCheck(check.keyId, sealKeyCheck(sealer), now()))
      await report({ step: 'key_check_resealed', oldKeyId: check.keyId, newKeyId });
  }

  let resealed = 0;
  for (let attempt = 1; ; attempt++) {
    resealed += await resealAll(store, sealer, keyring, newKeyId, batchSize, oldKeyIds, report);
    const blocked = await keyCheck.retireKeys(newKeyId, [...oldKeyIds].sort(), now());
    if (blocked === null) break;
    if (blocked.checkKeyId !== newKeyId) {
      throw new MasterKeyError(
        'key_rotation_pending',
        `The database's key check was re-sealed under key id ${blocked.checkKeyId} while this rotation to key id ${newKeyId} ran: is another rotation (to another key) running? Let one finish, then run this again.`,
        { newKeyId, databaseKeyId: blocked.checkKeyId },
      );
    }
    refusePending(blocked.pendingNodes, newKeyId, 'after re-sealing every connection');
    // Rows sealed under an old key since the sweep (a node that stopped sealing with it since):
    // sweep again, a bounded number of times.
    if (attempt >= RETIRE_ATTEMPTS) {
      throw new MasterKeyError(
        'key_rotation_pending',
        `Connections sealed under key id(s) ${blocked.connectionKeyIds.join(', ')} kept appearing while re-sealing under key id ${newKeyId}: some process still seals with an old key. Make sure every node runs with the new key, then run this again.`,
        { newKeyId, connectionKeyIds: blocked.connectionKeyIds },
      );
    }
  }
  const retiredKeyIds = (await keyCheck.listRetiredKeys()).map((r) => r.keyId);
  const before = new Set(retired.map((r) => r.keyId));
  await report({ step: 'retired', keyIds: retiredKeyIds.filter((id) => !before.has(id)), newKeyId });
  return { newKeyId, resealed, retiredKeyIds };
}

function refusePending(pending: NodeKeyReport[], newKeyId: string, when: string): void {
  if (pending.length === 0) return;
  const list = pending
    .map((n) =>
      n.sealKeyId === UNREPORTED_KEY_ID
        ? `${n.nodeId} (no key recorded: a release without key rotation; upgrade it first)`
        : `${n.nodeId} (key id ${n.sealKeyId})`,
    )
    .join(', ');
  throw new MasterKeyError(
    'key_rotation_pending',
    `Not every live node seals with the new key (key id ${newKeyId}) yet, ${when}: ${list}. Restart each of them with ${MASTER_KEY_ENV} set to the new key and the old key in ${DECRYPT_ONLY_KEYS_ENV}, then run this again (it resumes where it stopped).`,
    { newKeyId, nodes: pending },
  );
}

/** Re-seals, one row per statement, every row not sealed under the new key. */
function resealAll(
  store: ConnectionStore,
  sealer: ConnectionSealer,
  keyring: Keyring,
  newKeyId: string,
  batchSize: number,
  oldKeyIds: Set<string>,
  report: (event: RotateClusterKeyProgress) => void | Promise<void>,
): Promise<number> {
  return resealConnections(
    store,
    newKeyId,
    batchSize,
    (row, resealedSoFar) => {
      const oldKeyId = row.sealed.keyId;
      if (keyring.find(oldKeyId) === undefined) {
        throw new MasterKeyError(
          'master_key_unknown',
          `Connection ${row.name} (${row.id}) is sealed under key id ${oldKeyId}, which this command was not given: add that key to ${DECRYPT_ONLY_KEYS_ENV} (the nodes that read it hold it) and run this again. Nothing was lost; ${resealedSoFar} connection(s) were re-sealed so far.`,
          { connectionId: row.id, keyId: oldKeyId },
        );
      }
      oldKeyIds.add(oldKeyId);
      return sealer.seal(row.id, sealer.open(row.id, row.sealed));
    },
    (connectionId, oldKeyId) => report({ step: 'resealed', connectionId, oldKeyId, newKeyId }),
  );
}
