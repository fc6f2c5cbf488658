import { describe, expect, it } from 'vitest';
import { resolveServerConfig } from './server-config.js';

const DB = 'postgres://quoll@127.0.0.1:5432/quoll';

describe('resolveServerConfig: the roles and forwarding of a cluster node', () => {
  it('--no-inference (like --no-tasks) needs a cluster: an embedded home has no other node', () => {
    expect(() => resolveServerConfig({ home: '/tmp/h', inference: false }, {}, '/')).toThrow(
      /^--no-inference needs --database \(or QUOLL_DATABASE_URL\)/,
    );
    const node = resolveServerConfig({ home: '/tmp/h', database: DB, inference: false }, {}, '/');
    expect(node).toMatchObject({ servesInference: false, runsTasks: true });
    expect(resolveServerConfig({ home: '/tmp/h' }, {}, '/').servesInference).toBe(true);
  });

  it('QUOLL_NODE_URL and QUOLL_FORWARD_TIMEOUT_MS: defaults, accepted values, and clear refusals', () => {
    const defaults = resolveServerConfig({ home: '/tmp/h', database: DB }, {}, '/');
    expect(defaults).toMatchObject({ nodeUrl: null, forwardTimeoutMs: 60_000 });
    const set = resolveServerConfig(
      { home: '/tmp/h', database: DB },
      { QUOLL_NODE_URL: 'http://10.0.0.1:8470/', QUOLL_FORWARD_TIMEOUT_MS: '5000' },
      '/',
    );
    expect(set).toMatchObject({ nodeUrl: 'http://10.0.0.1:8470', forwardTimeoutMs: 5_000 });
    expect(() => resolveServerConfig({ home: '/tmp/h' }, { QUOLL_NODE_URL: '10.0.0.1:8470' }, '/')).toThrow(
      /^Invalid QUOLL_NODE_URL "10\.0\.0\.1:8470": give the URL other nodes reach this one at/,
    );
    expect(() =>
      resolveServerConfig({ home: '/tmp/h' }, { QUOLL_NODE_URL: 'http://10.0.0.1:8470/quoll' }, '/'),
    ).toThrow(/^Invalid QUOLL_NODE_URL/);
    expect(() => resolveServerConfig({ home: '/tmp/h' }, { QUOLL_FORWARD_TIMEOUT_MS: 'soon' }, '/')).toThrow(
      /^Invalid QUOLL_FORWARD_TIMEOUT_MS "soon": give whole milliseconds from 100 to 3600000/,
    );
  });
});
