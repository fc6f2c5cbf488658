import type { ClusterKeyStatus } from '../../connections/index.js';

const TARGET_FROM = {
  command: 'the key given as QUOLL_MASTER_KEY',
  nodes: 'the key every live node seals with',
  'key check': "the database key check's key (no live node)",
} as const;

/**
 * The lines `quoll admin rotate-key --status` prints (without `--json`): the key check, each live
 * node's keys, each key id with its state and connection count, then whether a rotation can
 * proceed or what blocks it. Key ids only, never keys.
 * @example
 * for (const line of keyStatusLines(await clusterKeyStatus(stores.keyCheck))) console.log(line);
 */
export function keyStatusLines(status: ClusterKeyStatus): string[] {
  const lines: string[] = [];
  lines.push(
    status.checkKeyId === null
      ? 'key check: none (no node has started on this database)'
      : `key check: sealed under key id ${status.checkKeyId}`,
  );
  lines.push(`live nodes: ${status.nodes.length === 0 ? '(none)' : ''}`.trimEnd());
  for (const n of status.nodes) {
    if (n.sealKeyId === null) {
      lines.push(`  ${n.nodeId}: no key recorded (a release without key rotation)`);
      continue;
    }
    const held =
      n.heldKeyIds === null ? 'holds: not recorded (an earlier release)' : `holds ${n.heldKeyIds.join(', ')}`;
    lines.push(`  ${n.nodeId}: seals with ${n.sealKeyId}; ${held}`);
  }
  lines.push(`keys: ${status.keys.length === 0 ? '(none)' : ''}`.trimEnd());
  for (const k of status.keys) {
    const parts = [
      k.state === 'retired' ? `retired ${k.retiredAt ?? ''}`.trimEnd() : k.state,
      ...(k.keyCheck ? ['key check'] : []),
      `${k.connections} connection(s)`,
      ...(k.sealedBy.length > 0 ? [`sealed with by ${k.sealedBy.join(', ')}`] : []),
      ...(k.heldBy.length > 0 ? [`held by ${k.heldBy.join(', ')}`] : []),
    ];
    lines.push(`  ${k.keyId}: ${parts.join('; ')}`);
  }
  const r = status.rotation;
  const target =
    r.targetKeyId === null || r.targetFrom === null
      ? 'rotation'
      : `rotation to key id ${r.targetKeyId} (${TARGET_FROM[r.targetFrom]})`;
  if (!r.canProceed) {
    lines.push(`${target}: blocked`);
    for (const b of r.blockers) lines.push(`  - ${b.code === null ? '' : `[${b.code}] `}${b.message}`);
  } else if (r.toReseal === 0 && r.toRetire.length === 0) {
    lines.push(
      `${target}: can proceed, with nothing to do (every connection and the key check are under it)`,
    );
  } else {
    lines.push(
      `${target}: can proceed: it would re-seal ${r.toReseal} connection(s)` +
        (r.toRetire.length > 0 ? ` and retire key id(s) ${r.toRetire.join(', ')}` : ''),
    );
  }
  return lines;
}
