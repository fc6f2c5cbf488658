import { describe, expect, it } from 'vitest';
import { formatBytes, Progress } from './progress.js';

function fakeStream(isTTY: boolean): { stream: NodeJS.WriteStream; written: string[] } {
  const written: string[] = [];
  const stream = {
    isTTY,
    columns: 60,
    write: (s: string) => written.push(s) > 0,
  } as unknown as NodeJS.WriteStream;
  return { stream, written };
}

describe('Progress', () => {
  it('rewrites one line on a terminal and ends it with the outcome', () => {
    const { stream, written } = fakeStream(true);
    const progress = Progress.start('deploying p', { stream });
    expect(progress.visible).toBe(true);
    progress.update('Starting');
    progress.done('Running');
    const CLEAR = '\r\u001b[2K';
    expect(written[0]?.startsWith(CLEAR)).toBe(true);
    expect(written[0]?.slice(CLEAR.length)).toMatch(/^deploying p: Starting \(\d+\.\d s\)$/);
    expect(written.at(-1)?.slice(CLEAR.length)).toMatch(/^deploying p: Running \(\d+\.\d s\)\n$/);
  });

  it('cuts the line to the terminal width', () => {
    const { stream, written } = fakeStream(true);
    Progress.start('x', { stream }).update('y'.repeat(200));
    expect(written[0]?.replace('\r\x1b[2K', '').length).toBe(59);
  });

  it('prints nothing on a pipe or under --json', () => {
    for (const [tty, json] of [
      [false, false],
      [true, true],
    ] as const) {
      const { stream, written } = fakeStream(tty);
      const progress = Progress.start('uploading', { stream, json });
      progress.update('50%');
      progress.done('done');
      progress.clear();
      expect(progress.visible).toBe(false);
      expect(written).toEqual([]);
    }
  });

  it('formats byte counts', () => {
    expect(formatBytes(512)).toBe('512 B');
    expect(formatBytes(1536)).toBe('1.5 KiB');
    expect(formatBytes(5 * 1024 ** 3)).toBe('5.0 GiB');
  });
});
