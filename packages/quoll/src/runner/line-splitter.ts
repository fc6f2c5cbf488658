import { StringDecoder } from 'node:string_decoder';

/**
 * Turns a byte stream into text lines: decodes UTF-8 across chunk boundaries, splits on
 * `\n` (dropping a trailing `\r`), cuts lines longer than `maxLineChars` into pieces so one
 * endless line cannot exhaust memory, and hands out a last line without newline on `end()`.
 */
export class LineSplitter {
  private readonly decoder = new StringDecoder('utf8');
  private rest = '';

  /**
   * @param onLine called with each complete line, without its newline.
   * @param maxLineChars longest line kept in one piece. @default 65536
   */
  constructor(
    private readonly onLine: (line: string) => void,
    private readonly maxLineChars = 65_536,
  ) {}

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
      this.onLine(last);
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
    while (this.rest.length > this.maxLineChars) {
      this.onLine(this.rest.slice(0, this.maxLineChars));
      this.rest = this.rest.slice(this.maxLineChars);
    }
  }

  private emit(line: string): void {
    for (let i = 0; i < line.length; i += this.maxLineChars) {
      this.onLine(line.slice(i, i + this.maxLineChars));
    }
    if (line.length === 0) this.onLine('');
  }
}
