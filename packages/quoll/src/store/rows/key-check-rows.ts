import type { NodeKeyReport } from '../../connections/index.js';

/**
 * A live node's row of `key_checks` as both backends read it: `key_id` of its 'node:<id>' row
 * (the key it seals with) and `held`, the `key_id` of its 'keys:<id>' row from the same start
 * (every key id it holds, comma-separated), or null when it recorded none.
 */
export interface NodeKeyRow {
  node_id: string;
  key_id: string;
  held: string | null;
}

/** The separator of the key ids in a 'keys:<node id>' row (key ids are hex). */
export const HELD_KEY_IDS_SEPARATOR = ',';

export const toNodeKeyReport = (r: NodeKeyRow): NodeKeyReport =>
  r.held === null
    ? { nodeId: r.node_id, sealKeyId: r.key_id }
    : { nodeId: r.node_id, sealKeyId: r.key_id, heldKeyIds: r.held.split(HELD_KEY_IDS_SEPARATOR) };
