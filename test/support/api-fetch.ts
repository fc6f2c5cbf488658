/** What a request to the API carries of its caller, each header only when given. */
export interface ApiFetchInit {
  /** @default 'GET' */
  method?: string;
  /** An API token, sent as `authorization: Bearer …`. */
  bearer?: string;
  /** A `Cookie` header (a console session: `quoll_session=…`). */
  cookie?: string;
  /** The session's CSRF token, sent as `x-quoll-csrf`. */
  csrf?: string;
  /** An `Origin` header. */
  origin?: string;
  /** A JSON body (with its content type). */
  json?: unknown;
}

/**
 * `fetch(url)` as a browser or a script calls the API: a bearer token or a console session's
 * cookie with its CSRF token, an Origin, a JSON body.
 *
 * @example const res = await apiFetch(`${server.url}/v1/workspaces`, { cookie, csrf, origin: server.url, method: 'POST', json: { name: 'w' } });
 */
export function apiFetch(url: string, init: ApiFetchInit = {}): Promise<Response> {
  const headers: Record<string, string> = {};
  if (init.bearer !== undefined) headers.authorization = `Bearer ${init.bearer}`;
  if (init.cookie !== undefined) headers.cookie = init.cookie;
  if (init.csrf !== undefined) headers['x-quoll-csrf'] = init.csrf;
  if (init.origin !== undefined) headers.origin = init.origin;
  if (init.json !== undefined) headers['content-type'] = 'application/json';
  return fetch(url, {
    method: init.method ?? 'GET',
    headers,
    ...(init.json !== undefined ? { body: JSON.stringify(init.json) } : {}),
  });
}
