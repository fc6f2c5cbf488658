/** Where progress goes: stderr when it is a terminal, never under `--json`. */
export interface ProgressOptions {
  json?: boolean;
  /** @default process.stderr */
  stream?: NodeJS.WriteStream;
}

/**
 * One line of progress on a terminal (`deploying orchestrationpipeline: Starting (2.1 s)`),
 * rewritten in place and finished with a newline. On anything that is not a terminal, and
 * under `--json`, it prints nothing, so scripts and pipes see only the command's output.
 * @example
 *   const progress = Progress.start('uploading model.onnx', opts);
 *   progress.update('40%');
 *   progress.done('uploaded');
 */
export class Progress {
  readonly #stream: NodeJS.WriteStream | null;
  readonly #label: string;
  readonly #started = Date.now();
  #last = 0;

  private constructor(label: string, stream: NodeJS.WriteStream | null) {
    this.#label = label;
    this.#stream = stream;
  }

  /** Starts a progress line; silent unless the stream is a terminal and `--json` is off. */
  static start(label: string, options: ProgressOptions = {}): Progress {
    const stream = options.stream ?? process.stderr;
    return new Progress(label, options.json !== true && stream.isTTY === true ? stream : null);
  }

  /** Whether anything is shown. */
  get visible(): boolean {
    return this.#stream !== null;
  }

  private elapsed(): string {
    return `${((Date.now() - this.#started) / 1000).toFixed(1)} s`;
  }

  /** Rewrites the line (at most ten times a second). */
  update(text: string): void {
    if (this.#stream === null) return;
    const now = Date.now();
    if (now - this.#last < 100) return;
    this.#last = now;
    const line = `${this.#label}: ${text} (${this.elapsed()})`;
    const width = this.#stream.columns > 0 ? this.#stream.columns - 1 : line.length;
    this.#stream.write(`\r\x1b[2K${line.slice(0, width)}`);
  }

  /** Writes the final state and ends the line. */
  done(text: string): void {
    if (this.#stream === null) return;
    this.#stream.write(`\r\x1b[2K${this.#label}: ${text} (${this.elapsed()})\n`);
  }

  /** Clears the line (an error follows). */
  clear(): void {
    this.#stream?.write('\r\x1b[2K');
  }
}

/** `12.3 MiB` */
export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB'];
  let value = n;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${unit === 0 ? value : value.toFixed(1)} ${units[unit]}`;
}
