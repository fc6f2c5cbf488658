/** What a secret is replaced with, in captured output and printed details alike. */
export const MASK = '*****';

/**
 * Values shorter than this are not redacted: replacing every "1", "yes" or "db" in a run's
 * output would destroy it while protecting nothing (a 3-character secret is not a secret).
 */
export const MIN_SECRET_LENGTH = 4;

/**
 * The strings to hide for a connection's details: every string leaf, every number leaf
 * written out (when at least `MIN_SECRET_LENGTH` long), and for multi-line strings (PEM
 * private keys in service-account JSON) also each line and the JSON-escaped form, since
 * output is captured line by line and a script may print the details as JSON.
 * Object keys are not collected: they name fields, they are not secrets.
 */
export function collectSecretValues(details: unknown): string[] {
  const found = new Set<string>();
  const add = (value: string): void => {
    if (value.length >= MIN_SECRET_LENGTH) found.add(value);
  };
  const visit = (node: unknown): void => {
    if (typeof node === 'string') {
      add(node);
      const escaped = JSON.stringify(node).slice(1, -1);
      if (escaped !== node) add(escaped);
      if (/[\r\n]/.test(node)) for (const line of node.split(/\r?\n|\r/)) add(line.trim());
    } else if (typeof node === 'number' || typeof node === 'bigint') {
      add(String(node));
    } else if (Array.isArray(node)) {
      for (const item of node) visit(item);
    } else if (typeof node === 'object' && node !== null) {
      for (const item of Object.values(node)) visit(item);
    }
  };
  visit(details);
  return [...found];
}

/**
 * Replaces every occurrence of each secret value in a line with `*****`. One regular
 * expression with escaped alternatives, longest first (so a secret that contains another is
 * hidden whole), is compiled once and reused for every line of a run.
 * @example
 * const redact = makeRedactor(collectSecretValues(details));
 * redact('GET https://user:s3cret@host/data'); // 'GET https://user:*****@host/data' (if "s3cret" was a value)
 */
export function makeRedactor(values: readonly string[]): (line: string) => string {
  const secrets = [...new Set(values.filter((v) => v.length >= MIN_SECRET_LENGTH))].sort(
    (a, b) => b.length - a.length,
  );
  if (secrets.length === 0) return (line) => line;
  const pattern = new RegExp(secrets.map(escapeRegExp).join('|'), 'g');
  return (line) => line.replace(pattern, MASK);
}

/** A redactor that can learn more secrets as a run reads more connections. */
export class SecretRedactor {
  readonly #values = new Set<string>();
  #redact: (line: string) => string = (line) => line;

  /**
   * @param values initial secret strings.
   * @default values []
   */
  constructor(values: readonly string[] = []) {
    this.add(values);
  }

  /** Adds secret strings (recompiling once per call, not per line). */
  add(values: readonly string[]): void {
    const before = this.#values.size;
    for (const v of values) if (v.length >= MIN_SECRET_LENGTH) this.#values.add(v);
    if (this.#values.size !== before) this.#redact = makeRedactor([...this.#values]);
  }

  /** Adds every secret value of a connection's details. */
  addDetails(details: unknown): void {
    this.add(collectSecretValues(details));
  }

  /** How many distinct secret strings are hidden. */
  get size(): number {
    return this.#values.size;
  }

  /** The line with every secret replaced by `*****`. */
  redact(line: string): string {
    return this.#redact(line);
  }
}

function escapeRegExp(value: string): string {
  return value.replace(/[\\^$.*+?()[\]{}|/-]/g, '\\$&');
}
