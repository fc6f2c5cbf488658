import type { Keyring } from './keyring.js';
import { UNREPORTED_KEY_ID } from './master-key-check.js';
import type { KeyCheckStore, KeyStatusSnapshot, NodeKeyReport } from './master-key-check.js';
import { DECRYPT_ONLY_KEYS_ENV, MASTER_KEY_ENV } from './master-key.js';
import type { MasterKeyErrorCode } from './master-key.js';

/** A live node's keys, as it recorded them when it started. */
export interface NodeKeyStatus {
  nodeId: string;
  /** The key id it seals with; null when it recorded none (a release without key rotation). */
  sealKeyId: string | null;
  /** Every key id it holds; null when it recorded none (an earlier release records only its seal key). */
  heldKeyIds: string[] | null;
}

/** One key id the cluster knows of. */
export interface KeyIdStatus {
  keyId: string;
  /**
   * `retired`: a finished rotation retired it (a node started with it is refused); `retiring`: a
   * rotation re-sealed the key check away from it and has not finished; `active` otherwise.
   */
  state: 'active' | 'retiring' | 'retired';
  /** When it was retired (ISO 8601); null unless retired. */
  retiredAt: string | null;
  /** Whether the database's key check is sealed under it. */
  keyCheck: boolean;
  /** Connections sealed under it. */
  connections: number;
  /** Live nodes that seal with it. */
  sealedBy: string[];
  /** Live nodes that hold it (among those that recorded what they hold). */
  heldBy: string[];
}

/** Whether `quoll admin rotate-key --database …` would go through now, and what it would do. */
export interface RotationReadiness {
  /**
   * The key a rotation re-seals under: the command's current key when it was given one, else the
   * key every live node seals with (the key check's with no live node); null when they disagree.
   */
  targetKeyId: string | null;
  /** Where {@link targetKeyId} came from. */
  targetFrom: 'command' | 'nodes' | 'key check' | null;
  /** True when running the rotation now would go through (it may have nothing to do). */
  canProceed: boolean;
  /** Connections not sealed under the target key: the rotation would re-seal them. */
  toReseal: number;
  /** Keys the rotation would retire once every row is re-sealed. */
  toRetire: string[];
  /** Why it cannot proceed, each with the code the rotation would fail with (null: none applies). */
  blockers: { code: MasterKeyErrorCode | null; message: string }[];
}

/** What `quoll admin rotate-key --status` reports. */
export interface ClusterKeyStatus {
  /** The key id of the database's key check; null before any node started on the database. */
  checkKeyId: string | null;
  /** Live nodes, by node id. */
  nodes: NodeKeyStatus[];
  /** Every key id the key check, a node, a connection or a rotation names: active, retiring, retired. */
  keys: KeyIdStatus[];
  rotation: RotationReadiness;
}

/** Options of {@link clusterKeyStatus}. */
export interface ClusterKeyStatusOptions {
  /**
   * The keys the rotation would be given (new key current, old ones decrypt-only): the target is
   * its current key and the status says whether it holds every key the rotation needs.
   * @default none (the target is the key the live nodes seal with)
   */
  keyring?: Keyring;
}

/**
 * The key ids of a cluster — which key each live node seals with and holds, which keys are
 * retiring or retired, how many connections are sealed under each — and whether a rotation can
 * proceed, or what blocks it. Reads one snapshot; changes nothing, and needs no key (key ids only).
 * @example
 * const status = await clusterKeyStatus(stores.keyCheck);
 */
export async function clusterKeyStatus(
  store: KeyCheckStore,
  options: ClusterKeyStatusOptions = {},
): Promise<ClusterKeyStatus> {
  const snapshot = await store.readKeyStatus();
  const nodes = snapshot.nodes.map(toNodeStatus);
  return {
    checkKeyId: snapshot.checkKeyId,
    nodes,
    keys: keyIds(snapshot, nodes, options.keyring),
    rotation: readiness(snapshot, nodes, options.keyring),
  };
}

function toNodeStatus(report: NodeKeyReport): NodeKeyStatus {
  return {
    nodeId: report.nodeId,
    sealKeyId: report.sealKeyId === UNREPORTED_KEY_ID ? null : report.sealKeyId,
    heldKeyIds: report.heldKeyIds ?? null,
  };
}

function keyIds(
  snapshot: KeyStatusSnapshot,
  nodes: NodeKeyStatus[],
  keyring: Keyring | undefined,
): KeyIdStatus[] {
  const ids = new Set<string>();
  if (snapshot.checkKeyId !== null) ids.add(snapshot.checkKeyId);
  if (keyring !== undefined) ids.add(keyring.current().id);
  for (const c of snapshot.connections) ids.add(c.keyId);
  for (const n of nodes) {
    if (n.sealKeyId !== null) ids.add(n.sealKeyId);
    for (const id of n.heldKeyIds ?? []) ids.add(id);
  }
  for (const id of snapshot.retiring) ids.add(id);
  for (const r of snapshot.retired) ids.add(r.keyId);
  const retiredAt = new Map(snapshot.retired.map((r) => [r.keyId, r.at]));
  const retiring = new Set(snapshot.retiring);
  const order = { active: 0, retiring: 1, retired: 2 } as const;
  return [...ids]
    .map((keyId): KeyIdStatus => {
      const at = retiredAt.get(keyId);
      return {
        keyId,
        state: at !== undefined ? 'retired' : retiring.has(keyId) ? 'retiring' : 'active',
        retiredAt: at ?? null,
        keyCheck: keyId === snapshot.checkKeyId,
        connections: snapshot.connections.find((c) => c.keyId === keyId)?.count ?? 0,
        sealedBy: nodes.filter((n) => n.sealKeyId === keyId).map((n) => n.nodeId),
        heldBy: nodes.filter((n) => n.heldKeyIds?.includes(keyId) === true).map((n) => n.nodeId),
      };
    })
    .sort((a, b) => order[a.state] - order[b.state] || (a.keyId < b.keyId ? -1 : a.keyId > b.keyId ? 1 : 0));
}

/** The checks of `rotateClusterKey`, made on the snapshot instead of by running it. */
function readiness(
  snapshot: KeyStatusSnapshot,
  nodes: NodeKeyStatus[],
  keyring: Keyring | undefined,
): RotationReadiness {
  const blockers: RotationReadiness['blockers'] = [];
  const unreported = nodes.filter((n) => n.sealKeyId === null);
  const sealKeys = [...new Set(nodes.flatMap((n) => (n.sealKeyId === null ? [] : [n.sealKeyId])))];
  let targetKeyId: string | null = null;
  let targetFrom: RotationReadiness['targetFrom'] = null;
  if (keyring !== undefined) {
    targetKeyId = keyring.current().id;
    targetFrom = 'command';
  } else if (sealKeys.length === 1) {
    targetKeyId = sealKeys[0]!;
    targetFrom = 'nodes';
  } else if (sealKeys.length === 0 && snapshot.checkKeyId !== null) {
    targetKeyId = snapshot.checkKeyId;
    targetFrom = 'key check';
  }

  if (snapshot.checkKeyId === null) {
    blockers.push({
      code: null,
      message: 'No node has started on this database yet: there is no key check and nothing to rotate.',
    });
  }
  if (unreported.length > 0) {
    blockers.push({
      code: 'key_rotation_pending',
      message: `Live node(s) ${unreported.map((n) => n.nodeId).join(', ')} recorded no key (a release without key rotation): they may seal with any key. Upgrade them first.`,
    });
  }
  if (targetKeyId === null) {
    if (sealKeys.length > 1) {
      const list = nodes
        .filter((n) => n.sealKeyId !== null)
        .map((n) => `${n.nodeId} (key id ${n.sealKeyId})`)
        .join(', ');
      blockers.push({
        code: 'key_rotation_pending',
        message: `The live nodes seal with different keys: ${list}. Finish the rolling restarts (every node seals with the new key as ${MASTER_KEY_ENV}, the old one in ${DECRYPT_ONLY_KEYS_ENV}) before rotating.`,
      });
    }
  } else {
    const gone = snapshot.retired.find((r) => r.keyId === targetKeyId);
    if (gone) {
      blockers.push({
        code: 'master_key_retired',
        message: `Key id ${targetKeyId} was retired by an earlier rotation (${gone.at}); a retired key is never used again: rotate to a fresh key.`,
      });
    }
    const pending = nodes.filter((n) => n.sealKeyId !== null && n.sealKeyId !== targetKeyId);
    if (targetFrom === 'command' && pending.length > 0) {
      blockers.push({
        code: 'key_rotation_pending',
        message: `Not every live node seals with key id ${targetKeyId} yet: ${pending.map((n) => `${n.nodeId} (key id ${n.sealKeyId})`).join(', ')}. Restart each with ${MASTER_KEY_ENV} set to the new key and the old one in ${DECRYPT_ONLY_KEYS_ENV}.`,
      });
    }
  }
  if (keyring !== undefined) {
    const held = new Set(keyring.keyIds());
    if (snapshot.checkKeyId !== null && !held.has(snapshot.checkKeyId)) {
      blockers.push({
        code: 'master_key_mismatch',
        message: `The keys given (key ids ${keyring.keyIds().join(', ')}) do not include the key of the database's key check (key id ${snapshot.checkKeyId}): give the old key in ${DECRYPT_ONLY_KEYS_ENV}.`,
      });
    }
    const unknown = snapshot.connections.filter((c) => !held.has(c.keyId));
    if (unknown.length > 0) {
      blockers.push({
        code: 'master_key_unknown',
        message: `Connections are sealed under key id(s) the keys given do not include: ${unknown.map((c) => `${c.keyId} (${c.count})`).join(', ')}. Add them to ${DECRYPT_ONLY_KEYS_ENV}.`,
      });
    }
  }

  const toReseal = snapshot.connections
    .filter((c) => c.keyId !== targetKeyId)
    .reduce((sum, c) => sum + c.count, 0);
  const toRetire = new Set(snapshot.retiring);
  if (targetKeyId !== null) {
    for (const c of snapshot.connections) toRetire.add(c.keyId);
    if (snapshot.checkKeyId !== null) toRetire.add(snapshot.checkKeyId);
    toRetire.delete(targetKeyId);
  }
  for (const r of snapshot.retired) toRetire.delete(r.keyId);
  return {
    targetKeyId,
    targetFrom,
    canProceed: blockers.length === 0 && targetKeyId !== null,
    toReseal: targetKeyId === null ? 0 : toReseal,
    toRetire: [...toRetire].sort(),
    blockers,
  };
}
