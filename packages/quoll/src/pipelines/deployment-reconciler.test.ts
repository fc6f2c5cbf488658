import { describe, expect, it } from 'vitest';
import { ManualClock } from '../clock/index.js';
import { LossyNotifier } from '../../../../test/support/lossy-notifier.js';
import { DeploymentReconciler } from './deployment-reconciler.js';
import type { PipelineService } from './pipeline-service.js';

/** Pipelines that count the reconcile rounds (the only method the reconciler calls). */
function countingPipelines(): { pipelines: PipelineService; rounds: () => number } {
  let rounds = 0;
  const pipelines = {
    reconcileDeployments: () => {
      rounds++;
      return Promise.resolve();
    },
  } as unknown as PipelineService;
  return { pipelines, rounds: () => rounds };
}

const settle = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

describe('DeploymentReconciler', () => {
  it('reconciles at once on a message, and when its listening connection was re-opened (a message may have been lost)', async () => {
    const clock = new ManualClock(0);
    const notifier = new LossyNotifier();
    const { pipelines, rounds } = countingPipelines();
    const reconciler = new DeploymentReconciler({
      pipelines,
      notifier,
      clock,
      onError: (err) => {
        throw err;
      },
    });
    await reconciler.start();
    await settle();
    expect(rounds()).toBe(1);
    await notifier.publish('quoll_deployments', '7');
    await settle();
    await settle();
    expect(rounds()).toBe(2);
    // An undeploy announced while the connection is down is lost; the timer is far away.
    notifier.deaf = true;
    await notifier.publish('quoll_deployments', '7');
    await settle();
    expect(rounds()).toBe(2);
    notifier.reconnect();
    await settle();
    await settle();
    expect(rounds()).toBe(3);
    await reconciler.stop();
    expect(reconciler.active).toBe(false);
    expect(notifier.catchUpCount).toBe(0);
  });
});
