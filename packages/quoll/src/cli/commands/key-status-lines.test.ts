import { describe, expect, it } from 'vitest';
import type { ClusterKeyStatus } from '../../connections/index.js';
import { keyStatusLines } from './key-status-lines.js';

const base: ClusterKeyStatus = {
  checkKeyId: 'aaaa',
  nodes: [
    { nodeId: 'node-a', sealKeyId: 'bbbb', heldKeyIds: ['bbbb', 'aaaa'] },
    { nodeId: 'node-b', sealKeyId: 'aaaa', heldKeyIds: null },
    { nodeId: 'node-old', sealKeyId: null, heldKeyIds: null },
  ],
  keys: [
    {
      keyId: 'aaaa',
      state: 'active',
      retiredAt: null,
      keyCheck: true,
      connections: 4,
      sealedBy: ['node-b'],
      heldBy: ['node-a'],
    },
    {
      keyId: 'bbbb',
      state: 'active',
      retiredAt: null,
      keyCheck: false,
      connections: 1,
      sealedBy: ['node-a'],
      heldBy: ['node-a'],
    },
    {
      keyId: 'cccc',
      state: 'retired',
      retiredAt: '2026-12-01T00:00:00.000Z',
      keyCheck: false,
      connections: 0,
      sealedBy: [],
      heldBy: [],
    },
  ],
  rotation: {
    targetKeyId: null,
    targetFrom: null,
    canProceed: false,
    toReseal: 0,
    toRetire: [],
    blockers: [{ code: 'key_rotation_pending', message: 'The live nodes seal with different keys.' }],
  },
};

describe('keyStatusLines', () => {
  it('prints the key check, each node, each key id and what blocks the rotation', () => {
    expect(keyStatusLines(base)).toEqual([
      'key check: sealed under key id aaaa',
      'live nodes:',
      '  node-a: seals with bbbb; holds bbbb, aaaa',
      '  node-b: seals with aaaa; holds: not recorded (an earlier release)',
      '  node-old: no key recorded (a release without key rotation)',
      'keys:',
      '  aaaa: active; key check; 4 connection(s); sealed with by node-b; held by node-a',
      '  bbbb: active; 1 connection(s); sealed with by node-a; held by node-a',
      '  cccc: retired 2026-12-01T00:00:00.000Z; 0 connection(s)',
      'rotation: blocked',
      '  - [key_rotation_pending] The live nodes seal with different keys.',
    ]);
  });

  it('says what a rotation that can proceed would do, or that it has nothing to do', () => {
    const ready = { targetKeyId: 'bbbb', targetFrom: 'nodes' as const, canProceed: true, blockers: [] };
    expect(keyStatusLines({ ...base, rotation: { ...ready, toReseal: 4, toRetire: ['aaaa'] } }).at(-1)).toBe(
      'rotation to key id bbbb (the key every live node seals with): can proceed: it would re-seal 4 connection(s) and retire key id(s) aaaa',
    );
    expect(keyStatusLines({ ...base, rotation: { ...ready, toReseal: 0, toRetire: [] } }).at(-1)).toBe(
      'rotation to key id bbbb (the key every live node seals with): can proceed, with nothing to do (every connection and the key check are under it)',
    );
  });

  it('a database no node started on', () => {
    const lines = keyStatusLines({ ...base, checkKeyId: null, nodes: [], keys: [] });
    expect(lines.slice(0, 3)).toEqual([
      'key check: none (no node has started on this database)',
      'live nodes: (none)',
      'keys: (none)',
    ]);
  });
});
