// Only fetch() here: the entry chunk (shell, sign-in, overview) stays free of the SDK and its
// Arrow code, which the other pages load with their chunk (session-client.ts).

/** Who the console is signed in as (GET /v1/console/session). */
export interface ConsoleSession {
  kind: 'admin' | 'workspace';
  workspaceId: number | null;
  subject: string;
  csrfToken: string | null;
  expiresAt: string | null;
}

/** The header that carries the session's CSRF token on requests that change something. */
export const CSRF_HEADER = 'x-quoll-csrf';

/** The signed-in session, or null when the cookie is missing, expired or revoked. */
export async function loadSession(): Promise<ConsoleSession | null> {
  const res = await fetch('/v1/console/session', { credentials: 'same-origin' });
  if (res.status === 401) return null;
  if (!res.ok) throw new Error(`GET /v1/console/session answered ${res.status}`);
  return (await res.json()) as ConsoleSession;
}

/** Starts a session from a sign-in link's code or a pasted API token; the server sets the cookie. */
export async function signIn(body: { code: string } | { token: string }): Promise<ConsoleSession> {
  const res = await fetch('/v1/console/session', {
    method: 'POST',
    credentials: 'same-origin',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  const answer = (await res.json()) as ConsoleSession | { error: { message: string } };
  if (!res.ok || 'error' in answer) {
    throw new Error('error' in answer ? answer.error.message : `sign-in failed (${res.status})`);
  }
  return answer;
}

let linkSignIn: Promise<ConsoleSession> | null = null;

/**
 * When the page was opened from a one-time sign-in link (`/sign-in#code=…`): drops the code from
 * the address bar and history and starts signing in with it, at once (the entry calls this
 * while it loads, before anything renders). The same promise on every call; null without a code.
 */
export function signInWithLink(): Promise<ConsoleSession> | null {
  if (linkSignIn !== null) return linkSignIn;
  if (window.location.pathname !== '/sign-in') return null;
  const code = new URLSearchParams(window.location.hash.slice(1)).get('code');
  if (code === null) return null;
  // The code works once: drop it from the address bar and history before using it.
  window.history.replaceState(null, '', '/sign-in');
  linkSignIn = signIn({ code });
  return linkSignIn;
}

/** Ends the session (the server clears the cookie). */
export async function signOut(session: ConsoleSession): Promise<void> {
  await fetch('/v1/console/session', {
    method: 'DELETE',
    credentials: 'same-origin',
    headers: session.csrfToken ? { [CSRF_HEADER]: session.csrfToken } : {},
  });
}

/** Headers every API call of the console sends (the CSRF token). */
export function apiHeaders(session: ConsoleSession | null): Record<string, string> {
  return session?.csrfToken ? { [CSRF_HEADER]: session.csrfToken } : {};
}

/**
 * fetch() of an API path with the session's headers (null: none yet, fine for a GET); throws the
 * server's error message.
 */
export async function api<T>(
  session: ConsoleSession | null,
  path: string,
  init: RequestInit = {},
): Promise<T> {
  const res = await fetch(path, {
    ...init,
    credentials: 'same-origin',
    headers: { ...apiHeaders(session), ...(init.headers as Record<string, string> | undefined) },
  });
  if (!res.ok) {
    let message = `${init.method ?? 'GET'} ${path} answered ${res.status}`;
    try {
      const body = (await res.json()) as { error?: { code: string; message: string } };
      if (body.error) message = `${body.error.code}: ${body.error.message}`;
    } catch {
      // Not JSON: keep the status line.
    }
    throw new Error(message);
  }
  return (res.status === 204 ? undefined : await res.json()) as T;
}
