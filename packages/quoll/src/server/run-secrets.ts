import { TASK_RUN_SUBJECT_PREFIX } from '../auth/index.js';
import { SecretRedactor } from '../connections/index.js';

/**
 * The run's own token and the connection values each active task run has read, so that run's
 * captured output hides them. A run is registered when its token is issued and forgotten when the token is
 * revoked (the run has ended); details read under any other subject are not recorded.
 *
 * @example
 * const secrets = new RunSecrets();
 * secrets.register(runId, [runToken]);
 * secrets.recordRead(`task-run:${runId}`, { host: 'https://u:pw@host' });
 * secrets.redact('fetching https://u:pw@host', runId); // 'fetching https://u:*****@host'
 * secrets.forget(runId);
 */
export class RunSecrets {
  private readonly byRun = new Map<string, SecretRedactor>();

  /**
   * Starts recording for a run (idempotent), hiding `secrets` from the start: the run's own
   * token, which its code could print (and workspace tokens read the logs of admin runs).
   * @default secrets []
   */
  register(runId: string, secrets: readonly string[] = []): void {
    let redactor = this.byRun.get(runId);
    if (redactor === undefined) this.byRun.set(runId, (redactor = new SecretRedactor()));
    redactor.add(secrets);
  }

  /** Stops recording for a run and drops what it read. */
  forget(runId: string): void {
    this.byRun.delete(runId);
  }

  /** Records the values of `details` when `subject` is an active run's token subject. */
  recordRead(subject: string, details: unknown): void {
    if (!subject.startsWith(TASK_RUN_SUBJECT_PREFIX)) return;
    this.byRun.get(subject.slice(TASK_RUN_SUBJECT_PREFIX.length))?.addDetails(details);
  }

  /** The line with every value the run has read replaced by `*****`. */
  redact(line: string, runId: string): string {
    const redactor = this.byRun.get(runId);
    return redactor === undefined ? line : redactor.redact(line);
  }

  /** Runs being recorded. */
  get size(): number {
    return this.byRun.size;
  }
}
