import { ConnectionSealer } from './connection-sealer.js';
import type { SealedDetails } from './connection-store.js';
import type { Keyring } from './keyring.js';
import { DECRYPT_ONLY_KEYS_ENV, MASTER_KEY_ENV, MASTER_KEY_FILE, MasterKeyError } from './master-key.js';

/** The pseudo connection id the key check is sealed under (its AES-GCM additional data). */
const KEY_CHECK_ID = 'quoll:master-key-check';
/** What the key check holds: nothing secret, only proof that a key opens it. */
const KEY_CHECK_VALUE = { check: 'quoll master key' };

/** The key check sealed under the keyring's current key. */
export function sealKeyCheck(sealer: ConnectionSealer): SealedDetails {
  return sealer.seal(KEY_CHECK_ID, KEY_CHECK_VALUE);
}

/** Whether one of the sealer's keys opens the key check (unaltered). */
export function opensKeyCheck(sealer: ConnectionSealer, check: SealedDetails): boolean {
  try {
    sealer.open(KEY_CHECK_ID, check);
    return true;
  } catch {
    return false;
  }
}

/**
 * The key id reported for a live node that recorded none: a node of a release before key
 * rotation, which may seal with any key, so a rotation waits for it (upgrade it first).
 */
export const UNREPORTED_KEY_ID = '(not reported: a release without key rotation)';

/**
 * How long a node's key report counts when the node has no `cluster_nodes` row (a node that never
 * registered): the same rule for every store.
 */
export const UNREGISTERED_REPORT_MS = 10 * 60_000;

/** A node's word on which keys it seals with and holds, recorded when it starts on a shared database. */
export interface NodeKeyReport {
  nodeId: string;
  /** The id of the key the node seals new values with. */
  sealKeyId: string;
  /**
   * The ids of every key the node holds (the seal key first, then its decrypt-only keys). Absent
   * when the node recorded none: a node of a release that records only its seal key.
   */
  heldKeyIds?: string[];
}

/** What {@link KeyCheckStore.readKeyStatus} reads, in one snapshot. */
export interface KeyStatusSnapshot {
  /** The key id the key check is sealed under; null before any node started on the database. */
  checkKeyId: string | null;
  /** Keys the key check was re-sealed away from by a rotation that has not retired them yet, sorted. */
  retiring: string[];
  /** The keys rotations retired, oldest first. */
  retired: RetiredKey[];
  /** Every live node and its report ({@link UNREPORTED_KEY_ID} for a node that recorded none), by node id. */
  nodes: NodeKeyReport[];
  /** How many connections are sealed under each key id, by key id. */
  connections: { keyId: string; count: number }[];
}

/** A key that a finished rotation retired: nothing is sealed under it any more. */
export interface RetiredKey {
  keyId: string;
  /** ISO 8601. */
  at: string;
}

/** What a node is admitted against: the database's key check and the retired keys. */
export interface KeyCheckState {
  check: SealedDetails;
  retired: RetiredKey[];
  /**
   * The other live nodes and the key each seals with ({@link UNREPORTED_KEY_ID} for a node
   * that recorded none): the node admitted must be able to open what they seal.
   */
  nodes: NodeKeyReport[];
  /**
   * Keys the key check was re-sealed away from by a rotation that has not finished (sorted):
   * connections may still be sealed under them, so the node admitted must hold them too.
   */
  retiring: string[];
}

/** Why {@link KeyCheckStore.retireKeys} retired nothing (each list empty when not the cause). */
export interface RetireBlocked {
  /** The key id the key check is sealed under (not the one asked for). */
  checkKeyId: string;
  /** Live nodes that seal with another key. */
  pendingNodes: NodeKeyReport[];
  /** Key ids other than the one asked for that connections are still sealed under. */
  connectionKeyIds: string[];
}

/**
 * Storage port for the key check of a shared database, the keys rotations retired and what
 * each node seals with. Every backend passes the conformance suite (`keyCheckStoreSuite`).
 */
export interface KeyCheckStore {
  /**
   * The stored key check; when there is none yet, stores `candidate` and returns it (one step,
   * so nodes starting together agree on the first one written).
   */
  ensureKeyCheck(candidate: SealedDetails, at: string): Promise<SealedDetails>;
  /**
   * In one transaction holding the key check's row (so it cannot interleave with
   * {@link retireKeys}): stores `candidate` (at `at`) when there is no key check yet, calls `admit`
   * with the key check, the retired and retiring keys and the other live nodes' reports — it throws to refuse, and then nothing is
   * recorded — and records `report` (when given) as what that node seals with and, when the
   * report lists them, the keys it holds (keys recorded at an earlier start of that node count
   * only while its seal key report is the one made with them).
   */
  admitNode(
    candidate: SealedDetails,
    at: string,
    report: NodeKeyReport | null,
    admit: (state: KeyCheckState) => void,
  ): Promise<KeyCheckState>;
  /**
   * Replaces the key check if it is still sealed under `expectedKeyId`; whether it did. In the
   * same transaction `expectedKeyId` is noted as retiring, so the next {@link retireKeys}
   * retires it even when no row names it any more (a rotation resumed after its last row).
   */
  replaceKeyCheck(expectedKeyId: string, sealed: SealedDetails, at: string): Promise<boolean>;
  /**
   * The reports of live nodes that seal with another key than `keyId`, by node id. A node is
   * live while its `cluster_nodes` row is `up`, or when it reported after (or in the same
   * millisecond as) its row was last seen: it is starting. A report without a row counts for
   * 10 minutes.
   */
  nodesNotSealingWith(keyId: string): Promise<NodeKeyReport[]>;
  /**
   * In one transaction holding the key check's row: records each of `retire`, and each key
   * noted as retiring by {@link replaceKeyCheck}, as retired at `at` (never `keyId`) — unless
   * the key check is not sealed under `keyId`, a live node seals with another key, or a
   * connection is sealed under another key; then nothing changes and it says why.
   */
  retireKeys(keyId: string, retire: readonly string[], at: string): Promise<RetireBlocked | null>;
  /** The keys rotations retired, oldest first. */
  listRetiredKeys(): Promise<RetiredKey[]>;
  /** The key check's key id, retiring and retired keys, live nodes' reports and connections by key id, in one read. */
  readKeyStatus(): Promise<KeyStatusSnapshot>;
}

/** Options of {@link verifyMasterKey}. */
export interface VerifyMasterKeyOptions {
  /**
   * The node being admitted: recorded as sealing with the keyring's current key, which is
   * what `quoll admin rotate-key` waits on, and as holding every key of the keyring, which the
   * nodes started after it are checked against. @default none (nothing recorded)
   */
  nodeId?: string;
}

/**
 * Admits a node to a shared database, or refuses it with `MasterKeyError`:
 *
 * - `master_key_retired` when the key it would seal with was retired by a finished rotation;
 * - `master_key_mismatch` when none of its keys opens the database's key check (the first
 *   node seals it; `quoll admin rotate-key` re-seals it under the new key), when it lacks a key
 *   an unfinished rotation re-sealed the key check away from (rows may still be under it), when it lacks the
 *   key another live node seals with, or when another live node does not hold the key it would
 *   seal with (a node that recorded no held keys, of an earlier release, is not checked).
 *
 * The messages name key ids (never keys) and the fix. On success the node's key is recorded
 * (with `nodeId`), in the same transaction as the check, so a rotation finishing at the same
 * moment either sees this node's key or this node sees the key retired.
 * @example
 * await verifyMasterKey(keyring, stores.keyCheck, new Date().toISOString(), { nodeId });
 */
export async function verifyMasterKey(
  keyring: Keyring,
  store: KeyCheckStore,
  at: string,
  options: VerifyMasterKeyOptions = {},
): Promise<void> {
  const sealer = new ConnectionSealer(keyring);
  const current = keyring.current();
  const report =
    options.nodeId === undefined
      ? null
      : { nodeId: options.nodeId, sealKeyId: current.id, heldKeyIds: keyring.keyIds() };
  await store.admitNode(sealKeyCheck(sealer), at, report, ({ check, retired, nodes, retiring }) => {
    const gone = retired.find((r) => r.keyId === current.id);
    if (gone) {
      throw new MasterKeyError(
        'master_key_retired',
        `This node's master key (key id ${current.id}) was retired by a key rotation (${gone.at}): the ` +
          `database's connections are sealed under key id ${check.keyId} now. Give this node the cluster's ` +
          `current key (${MASTER_KEY_ENV}, or <home>/${MASTER_KEY_FILE}) and start it again.`,
        { keyId: current.id, databaseKeyId: check.keyId, retiredAt: gone.at },
      );
    }
    if (!opensKeyCheck(sealer, check)) {
      const others = keyring.keyIds().filter((id) => id !== current.id);
      throw new MasterKeyError(
        'master_key_mismatch',
        `This node's master key (key id ${current.id}${others.length > 0 ? `; decrypt-only: ${others.join(', ')}` : ''}) ` +
          `is not the key of the database it joined (key id ${check.keyId}): every node of a cluster must ` +
          `hold the database's key. Copy <home>/${MASTER_KEY_FILE} from a node that works into this node's ` +
          `home (mode 0600), or set ${MASTER_KEY_ENV} to the same value on every node, then start this node ` +
          `again. During a key rotation a node needs both keys: the new one as ${MASTER_KEY_ENV} and the ` +
          `old one in ${DECRYPT_ONLY_KEYS_ENV} (or the reverse, before the new key is made current).`,
        { keyId: current.id, decryptOnlyKeyIds: others, databaseKeyId: check.keyId },
      );
    }
    // A rotation re-sealed the key check and has not finished (interrupted, or running): rows may
    // still be sealed under the key it re-sealed away from, which a node must hold to read them
    // (its old key dropped before the rotation finished: step 4 begun too early).
    const unfinished = retiring.filter((id) => keyring.find(id) === undefined);
    if (unfinished.length > 0) {
      throw new MasterKeyError(
        'master_key_mismatch',
        `This node (key ids ${keyring.keyIds().join(', ')}) lacks key id(s) ${unfinished.join(', ')}, which connections may ` +
          `still be sealed under: a key rotation re-sealed the database's key check under key id ${check.keyId} but has ` +
          `not finished. Give this node the old key in ${DECRYPT_ONLY_KEYS_ENV} and start it again; run ` +
          `\`quoll admin rotate-key --database …\` to the end before dropping the old key from any node.`,
        { keyIds: keyring.keyIds(), retiringKeyIds: unfinished, databaseKeyId: check.keyId },
      );
    }
    // A node that opens the key check may still miss the key another node seals with during a
    // rotation's rollout (e.g. restarted with the old key alone): it could not read those rows.
    const unreadable = nodes.filter(
      (n) => n.sealKeyId !== UNREPORTED_KEY_ID && keyring.find(n.sealKeyId) === undefined,
    );
    if (unreadable.length > 0) {
      const list = unreadable.map((n) => `${n.nodeId} seals with key id ${n.sealKeyId}`).join(', ');
      throw new MasterKeyError(
        'master_key_mismatch',
        `This node (key ids ${keyring.keyIds().join(', ')}) could not read what other live nodes seal: ${list}. ` +
          `During a key rotation every node must hold both keys: the new one as ${MASTER_KEY_ENV} and the old one in ` +
          `${DECRYPT_ONLY_KEYS_ENV} (or the reverse, before the new key is made current); start this node again with both.`,
        { keyIds: keyring.keyIds(), nodes: unreadable },
      );
    }
    // The reverse: another live node that could not read what this one would seal (a mistyped new
    // key in step 2, or step 1 not done on every node). A node that recorded no held keys (an
    // earlier release) is not checked.
    const lacking = nodes.filter((n) => n.heldKeyIds !== undefined && !n.heldKeyIds.includes(current.id));
    if (lacking.length > 0) {
      const list = lacking
        .map((n) => `${n.nodeId} (holds key ids ${(n.heldKeyIds ?? []).join(', ')})`)
        .join('; ');
      throw new MasterKeyError(
        'master_key_mismatch',
        `This node would seal with key id ${current.id}, which other live nodes do not hold, so they could not ` +
          `read what it seals: ${list}. If ${MASTER_KEY_ENV} is a new key, check it is the key given to every node ` +
          `in ${DECRYPT_ONLY_KEYS_ENV} (a mistyped key has another id); a key rotation first gives every node the new ` +
          `key in ${DECRYPT_ONLY_KEYS_ENV}, one restart at a time, and only then makes it ${MASTER_KEY_ENV}.`,
        { keyId: current.id, nodes: lacking },
      );
    }
  });
}
