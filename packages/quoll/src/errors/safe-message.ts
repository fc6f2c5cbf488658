/** The most characters of an error message a client is sent; the rest is elided. */
export const MAX_MESSAGE_CHARS = 1024;

/** An absolute file path of two or more segments (not an API route such as /v1/…). */
const ABSOLUTE_PATH = /(^|[\s"'`(=,[{])(\/(?!v\d+\/|sdk\/|metrics\b)[^\s"'`(),\]}]*\/[^\s"'`(),\]}]*)/g;
/** A stack frame line ("    at fn (file:line:col)"). */
const STACK_FRAME = /\n\s*at [^\n]*/g;

/**
 * An error message as a client may see it: the server's own paths (`paths`, e.g. its home) and
 * any other absolute file path replaced by `<path>`, stack frames removed, and at most
 * {@link MAX_MESSAGE_CHARS} characters, with the cut said.
 *
 * @example
 * safeMessage('cannot open /srv/quoll/models/ab.onnx', ['/srv/quoll']) // 'cannot open <home>/models/ab.onnx' → '<path>'
 */
export function safeMessage(message: string, paths: readonly string[] = []): string {
  let text = message.length > 64 * MAX_MESSAGE_CHARS ? message.slice(0, 64 * MAX_MESSAGE_CHARS) : message;
  text = text.replace(STACK_FRAME, '');
  for (const path of [...paths].filter((p) => p.length > 1).sort((a, b) => b.length - a.length)) {
    text = text.split(path).join('<path>');
  }
  text = text.replace(ABSOLUTE_PATH, (_match, lead: string) => `${lead}<path>`);
  if (text.length > MAX_MESSAGE_CHARS) {
    const cut = message.length - (MAX_MESSAGE_CHARS - 40);
    text = `${text.slice(0, MAX_MESSAGE_CHARS - 40)}… (${cut} more characters elided)`;
  }
  return text;
}

/**
 * Error details as a client may see them: strings cleaned like messages (and cut to 256
 * characters); details whose JSON passes 4 KiB are dropped, saying so.
 */
export function safeDetails(
  details: Record<string, unknown> | undefined,
  paths: readonly string[] = [],
): Record<string, unknown> | undefined {
  if (details === undefined) return undefined;
  const clean = (value: unknown): unknown => {
    if (typeof value === 'string') {
      const text = safeMessage(value, paths);
      return text.length > 256 ? `${text.slice(0, 240)}… (elided)` : text;
    }
    if (Array.isArray(value)) return value.slice(0, 64).map(clean);
    if (value !== null && typeof value === 'object') {
      return Object.fromEntries(
        Object.entries(value)
          .slice(0, 64)
          .map(([k, v]) => [k.slice(0, 64), clean(v)]),
      );
    }
    return value;
  };
  const cleaned = clean(details) as Record<string, unknown>;
  return JSON.stringify(cleaned).length > 4096 ? { elided: 'the details were too large to send' } : cleaned;
}
