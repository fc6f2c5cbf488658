import type { Clock } from '../clock/index.js';
import type { Notifier } from '../cluster/index.js';
import { PeriodicLoop } from '../cluster/index.js';
import type { PipelineService } from './pipeline-service.js';

/** Options of {@link DeploymentReconciler}. */
export interface DeploymentReconcilerOptions {
  pipelines: PipelineService;
  notifier: Notifier;
  /** How often the recorded deployments are compared with this node's, messages or not. @default 5000 */
  intervalMs?: number;
  onError: (err: unknown) => void;
  /** @default systemClock */
  clock?: Clock;
}

/**
 * Keeps this node serving what the shared database says is deployed on it: a deploy or
 * undeploy through any node is announced on `quoll_deployments`, a node joining, leaving or
 * found lost on `quoll_nodes` (its replicas move), and every node reconciles at once (and on
 * a timer; and at once when its listening connection was re-opened, since a message may have
 * been lost meanwhile).
 * @example
 * const reconciler = new DeploymentReconciler({ pipelines, notifier: stores.notifier, onError });
 * await reconciler.start();
 * await reconciler.stop();
 */
export class DeploymentReconciler {
  readonly #notifier: Notifier;
  readonly #loop: PeriodicLoop;
  #unsubscribe: Array<() => void> = [];

  constructor(options: DeploymentReconcilerOptions) {
    this.#notifier = options.notifier;
    this.#loop = new PeriodicLoop({
      step: async () => {
        await options.pipelines.reconcileDeployments();
      },
      intervalMs: options.intervalMs ?? 5_000,
      onError: options.onError,
      ...(options.clock === undefined ? {} : { clock: options.clock }),
    });
  }

  /** Whether the loop is still going (false once stopped). */
  get active(): boolean {
    return this.#loop.active;
  }

  /** Listens for deployment messages and starts the loop (its first round runs now). */
  async start(): Promise<void> {
    const wake = (): void => this.#loop.wake();
    // A deploy, undeploy or node change announced while the listening connection was down is
    // lost: a round runs as soon as it listens again (onCatchUp), not only at the next timer.
    // One connection carries both channels: one catch-up (one round) covers both.
    this.#unsubscribe.push(await this.#notifier.subscribe('quoll_deployments', wake, { onCatchUp: wake }));
    this.#unsubscribe.push(await this.#notifier.subscribe('quoll_nodes', wake));
    this.#loop.start();
  }

  /** Runs a round now and resolves when it has ended (tests). */
  reconcileNow(): Promise<void> {
    return this.#loop.runNow();
  }

  /** Stops listening and the loop; resolves once no round runs. Idempotent. */
  async stop(): Promise<void> {
    for (const unsubscribe of this.#unsubscribe.splice(0)) unsubscribe();
    await this.#loop.stop();
  }
}
