import { ConnectionSealer } from './connection-sealer.js';
import type { SealedDetails } from './connection-store.js';
import type { Keyring } from './keyring.js';
import { MASTER_KEY_ENV, MASTER_KEY_FILE, MasterKeyError } from './master-key.js';

/** The pseudo connection id the key check is sealed under (its AES-GCM additional data). */
const KEY_CHECK_ID = 'quoll:master-key-check';
/** What the key check holds: nothing secret, only proof that a key opens it. */
const KEY_CHECK_VALUE = { check: 'quoll master key' };

/** Storage port for the key check of a shared database. */
export interface KeyCheckStore {
  /**
   * The stored key check; when there is none yet, stores `candidate` and returns it (one step,
   * so nodes starting together agree on the first one written).
   */
  ensureKeyCheck(candidate: SealedDetails, at: string): Promise<SealedDetails>;
}

/**
 * Refuses a node whose master key is not the one the shared database's connections are sealed
 * with: the first node seals a key check with its key; every later node must open it. Throws
 * `MasterKeyError` naming both key ids (never the keys) and the fix.
 * @example
 * await verifyMasterKey(keyring, stores.keyCheck, new Date().toISOString());
 */
export async function verifyMasterKey(keyring: Keyring, store: KeyCheckStore, at: string): Promise<void> {
  const sealer = new ConnectionSealer(keyring);
  const stored = await store.ensureKeyCheck(sealer.seal(KEY_CHECK_ID, KEY_CHECK_VALUE), at);
  try {
    sealer.open(KEY_CHECK_ID, stored);
  } catch {
    throw new MasterKeyError(
      `This node's master key (key id ${keyring.current().id}) is not the key of the database it joined ` +
        `(key id ${stored.keyId}): every node of a cluster must be given the same master key. Copy ` +
        `<home>/${MASTER_KEY_FILE} from a node that works into this node's home (mode 0600), or set ` +
        `${MASTER_KEY_ENV} to the same value on every node, then start this node again.`,
    );
  }
}
