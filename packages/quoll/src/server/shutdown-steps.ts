/** One step of shutting down a server; `what` names it in the log when it is slow. */
export interface ShutdownStep {
  what: string;
  close: () => Promise<void> | void;
}

/** Told which step a stop is still waiting for, and for how long. */
export type SlowStopReporter = (what: string, waitedMs: number) => void;

/** Writes a slow step to stderr (until a server has its log). */
const toStderr: SlowStopReporter = (what, waitedMs) => {
  process.stderr.write(`quoll: still stopping after ${Math.round(waitedMs / 1000)} s: waiting for ${what}\n`);
};

/**
 * What a server opened, in order, and how to close each: {@link closeAll} closes them newest
 * first. A step that takes longer than `reportEveryMs` is reported by name (and again each
 * period), so an operator — or a test — sees what a stop that does not end is waiting for.
 *
 * @example
 *   const steps = new ShutdownSteps();
 *   steps.push({ what: 'database connections', close: () => stores.close() });
 *   await steps.closeAll();
 */
export class ShutdownSteps {
  readonly #steps: ShutdownStep[] = [];
  readonly #reportEveryMs: number;
  /** Where slow steps are reported; a server points it at its log once it has one. */
  report: SlowStopReporter = toStderr;
  #current: string | null = null;

  /** The step {@link closeAll} is waiting for now; null when it is not running. */
  get waitingFor(): string | null {
    return this.#current;
  }

  constructor(options: { reportEveryMs?: number } = {}) {
    this.#reportEveryMs = options.reportEveryMs ?? 10_000;
  }

  push(step: ShutdownStep): void {
    this.#steps.push(step);
  }

  /** Runs (and removes) the steps newest first; each runs even if another throws, the first error is rethrown. */
  async closeAll(): Promise<void> {
    const errors: unknown[] = [];
    for (let step = this.#steps.pop(); step !== undefined; step = this.#steps.pop()) {
      const { what } = step;
      this.#current = what;
      const started = Date.now();
      const timer = setInterval(() => this.report(what, Date.now() - started), this.#reportEveryMs);
      timer.unref();
      try {
        await step.close();
      } catch (err) {
        errors.push(err);
      } finally {
        clearInterval(timer);
        this.#current = null;
      }
    }
    const [first] = errors;
    if (first instanceof Error) throw first;
    if (errors.length > 0) throw new Error(`closing the server failed: ${String(first)}`);
  }
}
