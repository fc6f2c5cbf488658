import { StringDecoder } from 'node:string_decoder';

/** Options of {@link LineSplitter}. */
export interface LineSplitterOptions {
  /** Longest line kept in one piece; longer lines are cut into pieces. @default 65536 */
  maxLineChars?: number;
  /**
   * Applied to each line before it is cut into pieces (secret masking), so a secret is never
   * split across two pieces and missed. @default identity
   */
  redact?: (text: string) => string;
  /**
   * Longest secret `redact` must still find when an endless line (no newline) has to be cut
   * before its end: the cut is placed so that no match of up to this length straddles it.
   * @default 4096
   */
  maxSecretChars?: number;
}

/**
 * Turns a byte stream into text lines: decodes UTF-8 across chunk boundaries, splits on
 * `\n` (dropping a trailing `\r`), redacts each line whole, cuts lines longer than
 * `maxLineChars` into pieces so one endless line cannot exhaust memory, and hands out a last
 * line without newline on `end()`.
 */
export class LineSplitter {
  private readonly decoder = new StringDecoder('utf8');
  private readonly maxLineChars: number;
  private readonly redact: (text: string) => string;
  private readonly overlap: number;
  private rest = '';

  /**
   * @param onLine called with each complete (redacted) line or piece, without its newline.
   * @param options limits and the redaction; a number is `maxLineChars` (older form).
   */
  constructor(
    private readonly onLine: (line: string) => void,
    options: LineSplitterOptions | number = {},
  ) {
    const o = typeof options === 'number' ? { maxLineChars: options } : options;
    this.maxLineChars = Math.max(1, o.maxLineChars ?? 65_536);
    this.redact = o.redact ?? ((text) => text);
    // Without redaction there is nothing to keep whole: cut endless lines right at the limit.
    this.overlap = o.redact === undefined ? 0 : Math.max(0, o.maxSecretChars ?? 4096);
  }

  /** Feeds a chunk of output. */
  push(chunk: Buffer): void {
    this.take(this.rest + this.decoder.write(chunk));
  }

  /** Flushes the partial last line (if any). */
  end(): void {
    const text = this.rest + this.decoder.end();
    this.rest = '';
    this.take(text);
    if (this.rest !== '') {
      const last = this.rest;
      this.rest = '';
      this.emit(last);
    }
  }

  private take(text: string): void {
    let start = 0;
    for (;;) {
      const nl = text.indexOf('\n', start);
      if (nl < 0) break;
      let line = text.slice(start, nl);
      if (line.endsWith('\r')) line = line.slice(0, -1);
      this.emit(line);
      start = nl + 1;
    }
    this.rest = text.slice(start);
    // An endless line: cut it early, but only once enough follows the cut to know that no
    // secret straddles it (the overlap), and at a point where none does.
    while (this.rest.length > this.maxLineChars + this.overlap) {
      const cut = this.safeCut(this.rest, this.maxLineChars);
      this.emit(this.rest.slice(0, cut));
      this.rest = this.rest.slice(cut);
    }
  }

  /**
   * A cut point at or before `at` (and after 0) where redacting both sides separately gives
   * the same as redacting across it, i.e. where no match of up to `overlap` chars is split.
   */
  private safeCut(text: string, at: number): number {
    if (this.overlap === 0) return at;
    const floor = Math.max(1, at - this.overlap);
    for (let c = at; c >= floor; c--) {
      const from = Math.max(0, c - this.overlap);
      const to = Math.min(text.length, c + this.overlap);
      const whole = this.redact(text.slice(from, to));
      if (whole === this.redact(text.slice(from, c)) + this.redact(text.slice(c, to))) return c;
    }
    // Every cut within reach splits a match (a run of overlapping secrets): cut anyway.
    return at;
  }

  /** Redacts a whole line, then cuts it into pieces of at most `maxLineChars`. */
  private emit(raw: string): void {
    const line = this.redact(raw);
    for (let i = 0; i < line.length; i += this.maxLineChars) {
      this.onLine(line.slice(i, i + this.maxLineChars));
    }
    if (line.length === 0) this.onLine('');
  }
}
