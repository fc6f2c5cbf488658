/** Receives an installer's output (npm, `python -m venv`, pip), one line at a time. */
export type InstallLogSink = (line: string) => void;

/** An install step failed: `firstLines` holds its first error lines, for the orchestration's error. */
export class InstallError extends Error {
  constructor(
    message: string,
    readonly firstLines: string,
  ) {
    super(message);
    this.name = 'InstallError';
  }
}
