/** Options of `new Client()`. */
export interface ClientOptions {
  /**
   * Server URL, e.g. `http://127.0.0.1:8470`.
   * @default in Node: `QUOLL_URL`, else the credentials file; in a browser: the page's origin
   */
  url?: string;
  /**
   * Bearer token.
   * @default in Node: `QUOLL_TOKEN`, else the credentials file; in a browser: none (the
   * browser's own session cookie, if any, is sent to the same origin)
   */
  token?: string;
  /** Node only: environment to read `QUOLL_URL`, `QUOLL_TOKEN`, `QUOLL_HOME` from. @default process.env */
  env?: Record<string, string | undefined>;
  /** Node only: directory that `./.quoll/credentials.json` is relative to. @default process.cwd() */
  cwd?: string;
  /** Extra headers sent with every request (e.g. a CSRF header of a browser session). @default {} */
  headers?: Record<string, string>;
  /** The `fetch` to use (a proxying or instrumented one). @default globalThis.fetch */
  fetch?: typeof fetch;
}
