import { AuthError, QuollError, errorFromResponse } from '../errors/index.js';

/** Error codes of a connection that could not be made. */
const CONNECT_ERRORS = new Set([
  'ECONNREFUSED',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ECONNRESET',
]);

/** A raw request body. */
export type RequestBody = Uint8Array | string | Blob | ReadableStream<Uint8Array>;

/** Options of the transport itself. */
export interface HttpTransportOptions {
  /** Sent with every request. @default {} */
  headers?: Record<string, string>;
  /** @default globalThis.fetch */
  fetch?: typeof fetch;
}

/** Options of one request. */
export interface RequestOptions {
  /** A JSON body. */
  json?: unknown;
  /** A raw body (with `contentType`). */
  body?: RequestBody;
  contentType?: string;
  accept?: string;
  query?: Record<string, string | number | boolean | undefined>;
  /** Milliseconds before the request is abandoned. @default 60000 */
  timeoutMs?: number;
  signal?: AbortSignal;
}

/**
 * The SDK's HTTP layer (global `fetch`, no native modules): adds the bearer token, encodes
 * queries and bodies, and turns error answers into typed `QuollError`s.
 */
export class HttpTransport {
  readonly #token: string | null;
  readonly #headers: Record<string, string>;
  readonly #fetch: typeof fetch;

  /** @param token the bearer token; null sends none (a browser session cookie authenticates instead). */
  constructor(
    readonly baseUrl: string,
    token: string | null,
    options: HttpTransportOptions = {},
  ) {
    this.#token = token;
    this.#headers = { ...options.headers };
    // Called unbound, as browsers require of window.fetch.
    const f = options.fetch ?? globalThis.fetch;
    this.#fetch = (input, init) => f(input, init);
  }

  /** The `Authorization` header this transport sends (empty without a token). */
  authHeader(): Record<string, string> {
    return this.#token === null ? {} : { Authorization: `Bearer ${this.#token}` };
  }

  /** Full URL of a path. */
  url(path: string, query?: RequestOptions['query']): string {
    const u = new URL(path, this.baseUrl);
    for (const [k, v] of Object.entries(query ?? {})) if (v !== undefined) u.searchParams.set(k, String(v));
    return u.toString();
  }

  /** Sends a request; answers the raw Response when it is a success. */
  async send(method: string, path: string, opts: RequestOptions = {}): Promise<Response> {
    const headers: Record<string, string> = { ...this.#headers };
    if (this.#token !== null) headers.authorization = `Bearer ${this.#token}`;
    let body: RequestInit['body'];
    if (opts.json !== undefined) {
      headers['content-type'] = 'application/json';
      body = JSON.stringify(opts.json);
    } else if (opts.body !== undefined) {
      headers['content-type'] = opts.contentType ?? 'application/octet-stream';
      body = opts.body as RequestInit['body'];
    }
    if (opts.accept) headers.accept = opts.accept;
    const signals = [AbortSignal.timeout(opts.timeoutMs ?? 60_000), ...(opts.signal ? [opts.signal] : [])];
    let res: Response;
    try {
      res = await this.#fetch(this.url(path, opts.query), {
        method,
        headers,
        body,
        signal: AbortSignal.any(signals),
        // A streamed body needs half duplex (Node's fetch insists; browsers stream over HTTP/2 only).
        ...(typeof ReadableStream !== 'undefined' && body instanceof ReadableStream
          ? { duplex: 'half' }
          : {}),
      });
    } catch (err) {
      const e = err as Error;
      if (e.name === 'TimeoutError') {
        throw new QuollError(
          'timeout',
          `${method} ${path} did not answer within ${opts.timeoutMs ?? 60_000} ms; pass a larger timeout.`,
          0,
        );
      }
      if (e.name === 'AbortError') throw err;
      // fetch wraps the real cause; only connection failures mean the server is unreachable.
      const cause = (e as { cause?: { code?: string; message?: string } }).cause;
      if (cause?.code && CONNECT_ERRORS.has(cause.code)) {
        throw new QuollError(
          'internal_error',
          `Cannot reach the Quoll server at ${this.baseUrl} (${cause.code}). Is "quoll server" running?`,
          0,
        );
      }
      throw new QuollError(
        'internal_error',
        `${method} ${path} failed before an answer arrived: ${cause?.message ?? e.message}.`,
        0,
      );
    }
    if (res.ok) return res;
    let parsed: unknown = null;
    try {
      parsed = await res.json();
    } catch {
      // Not a JSON error body; errorFromResponse says so.
    }
    const err = errorFromResponse(res.status, parsed);
    if (res.status === 401 && !(err instanceof AuthError)) {
      throw new AuthError('invalid_token', 'The server refused the token.', 401);
    }
    throw err;
  }

  /** Sends a request and parses the JSON answer. */
  async json<T>(method: string, path: string, opts: RequestOptions = {}): Promise<T> {
    const res = await this.send(method, path, opts);
    if (res.status === 204) return undefined as T;
    return (await res.json()) as T;
  }
}
