import { describe, expect, it } from 'vitest';
import { ApiError } from '../errors/index.js';
import { parseMemory, resolveDeploymentConfig, type DeploymentCapacity } from './deployment-config.js';

const single: DeploymentCapacity = { maxReplicas: 1, defaultWorkers: 2, modelBytes: 200_000 };

function refusal(run: () => unknown): ApiError {
  try {
    run();
  } catch (err) {
    if (err instanceof ApiError) return err;
    throw err;
  }
  throw new Error('expected a refusal');
}

describe('parseMemory', () => {
  it('reads Kubernetes quantities and plain bytes', () => {
    expect(parseMemory('1Gi')).toBe(2 ** 30);
    expect(parseMemory('512Mi')).toBe(512 * 2 ** 20);
    expect(parseMemory('1.5G')).toBe(1.5e9);
    expect(parseMemory('800M')).toBe(8e8);
    expect(parseMemory('64Ki')).toBe(65_536);
    expect(parseMemory(4096)).toBe(4096);
    expect(parseMemory(' 2 Gi ')).toBe(2 * 2 ** 30);
  });

  it('refuses anything else, naming the value and the accepted forms', () => {
    for (const bad of ['lots', '1GB', '-1Gi', '0', '', 'Gi', '1e9', '0.1']) {
      const err = refusal(() => parseMemory(bad));
      expect(err.code, bad).toBe('invalid_deployment_config');
      expect(err.message).toContain(`config.memory ${JSON.stringify(bad)} is not a memory size`);
      expect(err.message).toContain('"1Gi"');
    }
  });
});

describe('resolveDeploymentConfig', () => {
  it('keeps workers; cpus sets ceil(cpus) workers when workers is not given', () => {
    expect(resolveDeploymentConfig({}, single)).toEqual({ workers: undefined, memoryBytes: null });
    expect(resolveDeploymentConfig({ workers: 3 }, single).workers).toBe(3);
    expect(resolveDeploymentConfig({ cpus: 0.25 }, single).workers).toBe(1);
    expect(resolveDeploymentConfig({ cpus: 0.5 }, single).workers).toBe(1);
    expect(resolveDeploymentConfig({ cpus: 1.5 }, single).workers).toBe(2);
    expect(resolveDeploymentConfig({ cpus: 4, workers: 2 }, single).workers).toBe(2);
    expect(resolveDeploymentConfig({ cpus: 1000 }, single).workers).toBe(64);
  });

  it('refuses workers that need more cores than cpus gives', () => {
    const err = refusal(() => resolveDeploymentConfig({ workers: 3, cpus: 2 }, single));
    expect(err.message).toMatch(/^config\.workers 3 and config\.cpus 2 disagree: .* need cpus: 3\./);
    expect(err.details).toMatchObject({ field: 'config.workers' });
  });

  it('replicas: 1 on an embedded server (the refusal points at a cluster); a cluster node places any count', () => {
    expect(resolveDeploymentConfig({ replicas: 1 }, single).workers).toBeUndefined();
    const err = refusal(() => resolveDeploymentConfig({ replicas: 2 }, single));
    expect(err.code).toBe('invalid_deployment_config');
    expect(err.message).toMatch(
      /^config\.replicas is 2, but this server runs at most 1 replica of a pipeline \(an embedded server is one node\).*quoll server --database postgres:/,
    );
    expect(err.details).toMatchObject({ field: 'config.replicas', max: 1 });
    expect(() => resolveDeploymentConfig({ replicas: 5 }, { ...single, maxReplicas: null })).not.toThrow();
  });

  it("memory must hold every worker's copy of the models", () => {
    // 2 workers × 200 000 bytes = 400 000 bytes.
    expect(resolveDeploymentConfig({ memory: '1Gi' }, single).memoryBytes).toBe(2 ** 30);
    expect(resolveDeploymentConfig({ memory: 400_000 }, single).memoryBytes).toBe(400_000);
    const err = refusal(() => resolveDeploymentConfig({ memory: 399_999 }, single));
    expect(err.message).toMatch(
      /^config\.memory 399999 \(391 KiB\) is too small: 2 workers .* needs at least 391 KiB\. Raise memory, or give workers: 1 \(or cpus: 1\)\./,
    );
    expect(err.details).toMatchObject({ neededBytes: 400_000, workers: 2 });
    // cpus lowers the worker count, and so what memory must hold.
    expect(resolveDeploymentConfig({ memory: 200_000, cpus: 1 }, single).workers).toBe(1);
    const tiny = refusal(() => resolveDeploymentConfig({ memory: '1Ki', workers: 1 }, single));
    expect(tiny.message).toContain('Raise memory to at least');
  });
});
