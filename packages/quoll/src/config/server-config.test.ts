import { availableParallelism } from 'node:os';
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

describe('resolveServerConfig: the task memory limit and the Node.js that runs tasks', () => {
  it('on Node 24 and later, QUOLL_TASK_MEMORY below the floor Node needs to start is refused, naming the floor', () => {
    const low = { QUOLL_TASK_MEMORY: '512 MiB' };
    expect(() => resolveServerConfig({ home: '/tmp/h' }, low, '/', '24.22.3')).toThrow(
      /^QUOLL_TASK_MEMORY "512 MiB" is below 600 MiB, the least Node\.js 24\.22\.3 needs to start a task run/,
    );
    expect(() => resolveServerConfig({ home: '/tmp/h' }, low, '/', '25.0.0')).toThrow(/below 600 MiB/);
    // At or above the floor, unlimited, or the default: accepted.
    for (const memory of ['600 MiB', '1 GiB', 'none', undefined]) {
      const env = memory === undefined ? {} : { QUOLL_TASK_MEMORY: memory };
      expect(() => resolveServerConfig({ home: '/tmp/h' }, env, '/', '24.22.3'), memory).not.toThrow();
    }
    // Node 20 and 22 start under 64 MiB: no floor there.
    for (const version of ['20.9.0', '22.23.5']) {
      const config = resolveServerConfig({ home: '/tmp/h' }, { QUOLL_TASK_MEMORY: '64 MiB' }, '/', version);
      expect(config.taskLimits.memoryBytes).toBe(64 * 1024 ** 2);
      expect(config.taskMemoryFloorBytes).toBeNull();
    }
    // The floor a task's own memoryBytes is held to at creation.
    expect(resolveServerConfig({ home: '/tmp/h' }, {}, '/', '24.22.3').taskMemoryFloorBytes).toBe(
      600 * 1024 ** 2,
    );
  });
});

describe('resolveServerConfig: the task disk limit', () => {
  it('is 2 GiB by default; QUOLL_TASK_DISK or --task-disk (which wins) set it, none turns it off, nonsense is refused', () => {
    expect(resolveServerConfig({ home: '/tmp/h' }, {}, '/').taskLimits.diskBytes).toBe(2 * 1024 ** 3);
    expect(
      resolveServerConfig({ home: '/tmp/h' }, { QUOLL_TASK_DISK: '10 GiB' }, '/').taskLimits.diskBytes,
    ).toBe(10 * 1024 ** 3);
    const flag = resolveServerConfig(
      { home: '/tmp/h', taskDisk: '512 MiB' },
      { QUOLL_TASK_DISK: '10 GiB' },
      '/',
    );
    expect(flag.taskLimits.diskBytes).toBe(512 * 1024 ** 2);
    expect(
      resolveServerConfig({ home: '/tmp/h' }, { QUOLL_TASK_DISK: 'none' }, '/').taskLimits.diskBytes,
    ).toBeNull();
    expect(() => resolveServerConfig({ home: '/tmp/h' }, { QUOLL_TASK_DISK: 'lots' }, '/')).toThrow(
      /^Invalid QUOLL_TASK_DISK "lots": give a positive number of bytes/,
    );
    expect(() => resolveServerConfig({ home: '/tmp/h', taskDisk: '-1' }, {}, '/')).toThrow(
      /^Invalid --task-disk "-1"/,
    );
  });

  it('installs (npm, pip) have a disk limit of their own, 16 GiB by default (QUOLL_INSTALL_DISK), none turns it off', () => {
    expect(resolveServerConfig({ home: '/tmp/h' }, {}, '/').installDiskBytes).toBe(16 * 1024 ** 3);
    expect(
      resolveServerConfig({ home: '/tmp/h' }, { QUOLL_INSTALL_DISK: '40 GiB' }, '/').installDiskBytes,
    ).toBe(40 * 1024 ** 3);
    expect(
      resolveServerConfig({ home: '/tmp/h' }, { QUOLL_INSTALL_DISK: 'none' }, '/').installDiskBytes,
    ).toBeNull();
    expect(() => resolveServerConfig({ home: '/tmp/h' }, { QUOLL_INSTALL_DISK: '0' }, '/')).toThrow(
      /^Invalid QUOLL_INSTALL_DISK "0"/,
    );
  });
});

describe('resolveServerConfig: task slots per workspace', () => {
  it('leaves one slot of the concurrency to other workspaces by default; a setting is capped at the concurrency', () => {
    expect(resolveServerConfig({ home: '/tmp/h' }, {}, '/')).toMatchObject({
      taskConcurrency: 4,
      taskWorkspaceConcurrency: 3,
    });
    expect(
      resolveServerConfig({ home: '/tmp/h', taskConcurrency: 1 }, {}, '/').taskWorkspaceConcurrency,
    ).toBe(1);
    expect(
      resolveServerConfig({ home: '/tmp/h' }, { QUOLL_TASK_WORKSPACE_CONCURRENCY: '9' }, '/')
        .taskWorkspaceConcurrency,
    ).toBe(4);
    expect(
      resolveServerConfig(
        { home: '/tmp/h', taskWorkspaceConcurrency: 2 },
        { QUOLL_TASK_WORKSPACE_CONCURRENCY: '9' },
        '/',
      ).taskWorkspaceConcurrency,
    ).toBe(2);
    expect(() =>
      resolveServerConfig({ home: '/tmp/h' }, { QUOLL_TASK_WORKSPACE_CONCURRENCY: '0' }, '/'),
    ).toThrow(/^Invalid task workspace concurrency "0": give an integer from 1 to 256/);
  });
});

describe('resolveServerConfig: how slowly answers may be read', () => {
  it('QUOLL_ANSWER_MIN_RATE: 16 KiB/s by default like the body minimum, a size per second, nonsense refused', () => {
    const defaults = resolveServerConfig({ home: '/tmp/h' }, {}, '/');
    expect(defaults).toMatchObject({ answerIdleTimeoutMs: 60_000, answerMinBytesPerSecond: 16 * 1024 });
    expect(defaults.answerMinBytesPerSecond).toBe(defaults.bodyMinBytesPerSecond);
    expect(resolveServerConfig({ home: '/tmp/h' }, { QUOLL_ANSWER_MIN_RATE: '1 MiB' }, '/')).toMatchObject({
      answerMinBytesPerSecond: 1024 * 1024,
    });
    expect(
      resolveServerConfig(
        { home: '/tmp/h', answerMinBytesPerSecond: 100 },
        { QUOLL_ANSWER_MIN_RATE: '1 MiB' },
        '/',
      ),
    ).toMatchObject({ answerMinBytesPerSecond: 100 });
    expect(() => resolveServerConfig({ home: '/tmp/h' }, { QUOLL_ANSWER_MIN_RATE: 'fast' }, '/')).toThrow(
      /^Invalid QUOLL_ANSWER_MIN_RATE "fast"/,
    );
  });
});

describe('resolveServerConfig: inline runs', () => {
  it('are on by default (each pipeline still passes the work bound and the admission probe); QUOLL_INLINE_RUNS=off or --inline-runs off / --no-inline-runs turn them off, a flag winning over the environment', () => {
    expect(resolveServerConfig({ home: '/tmp/h' }, {}, '/').inlineRuns).toBe(true);
    expect(resolveServerConfig({ home: '/tmp/h' }, { QUOLL_INLINE_RUNS: 'off' }, '/').inlineRuns).toBe(false);
    expect(resolveServerConfig({ home: '/tmp/h' }, { QUOLL_INLINE_RUNS: 'on' }, '/').inlineRuns).toBe(true);
    expect(
      resolveServerConfig({ home: '/tmp/h', inlineRuns: 'off' }, { QUOLL_INLINE_RUNS: 'on' }, '/').inlineRuns,
    ).toBe(false);
    expect(
      resolveServerConfig({ home: '/tmp/h', inlineRuns: false }, { QUOLL_INLINE_RUNS: 'on' }, '/').inlineRuns,
    ).toBe(false);
    expect(resolveServerConfig({ home: '/tmp/h', inlineRuns: 'on' }, {}, '/').inlineRuns).toBe(true);
    expect(
      resolveServerConfig({ home: '/tmp/h', inlineRuns: true }, { QUOLL_INLINE_RUNS: 'off' }, '/').inlineRuns,
    ).toBe(true);
    expect(() => resolveServerConfig({ home: '/tmp/h' }, { QUOLL_INLINE_RUNS: 'sometimes' }, '/')).toThrow(
      /QUOLL_INLINE_RUNS/,
    );
    expect(() => resolveServerConfig({ home: '/tmp/h', inlineRuns: 'maybe' }, {}, '/')).toThrow(
      /--inline-runs/,
    );
  });
});

describe('resolveServerConfig: inline runs while requests overlap', () => {
  it('are on when the process may run on one CPU only; QUOLL_INLINE_CONTENDED=on|off decides otherwise', () => {
    expect(resolveServerConfig({ home: '/tmp/h' }, {}, '/').inlineWhenContended).toBe(
      availableParallelism() === 1,
    );
    const on = resolveServerConfig({ home: '/tmp/h' }, { QUOLL_INLINE_CONTENDED: 'on' }, '/');
    expect(on.inlineWhenContended).toBe(true);
    const off = resolveServerConfig({ home: '/tmp/h' }, { QUOLL_INLINE_CONTENDED: 'off' }, '/');
    expect(off.inlineWhenContended).toBe(false);
    expect(() => resolveServerConfig({ home: '/tmp/h' }, { QUOLL_INLINE_CONTENDED: 'maybe' }, '/')).toThrow(
      /QUOLL_INLINE_CONTENDED/,
    );
  });
});
