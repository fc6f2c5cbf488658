import type { JSX } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { signIn, signInWithLink, type ConsoleSession } from '../session.js';
import { ErrorBox, Field } from '../ui.js';

/**
 * Signs in with the one-time link's code (in the URL fragment, so it never reaches a server
 * log) or a pasted API token; the server answers with the HttpOnly session cookie.
 */
export function SignInPage({ onSignedIn }: { onSignedIn: (s: ConsoleSession) => void }): JSX.Element {
  const [error, setError] = useState<string | null>(null);
  // A link's code: signing in started while the page loaded (signInWithLink in the entry).
  const [busy, setBusy] = useState(() => signInWithLink() !== null);
  const [token, setToken] = useState('');
  useEffect(() => {
    document.title = 'Sign in · Quoll';
    signInWithLink()?.then(onSignedIn, (err: unknown) => {
      setBusy(false);
      setError(err instanceof Error ? err.message : String(err));
    });
  }, []);
  return (
    <main class="sign-in panel">
      <h1>Sign in to Quoll</h1>
      {busy ? <p aria-live="polite">Signing in…</p> : null}
      <ErrorBox error={error} />
      <p>
        Run <code>quoll console</code> on a machine with the CLI and open the link it prints, or paste an API
        token.
      </p>
      <form
        class="row"
        onSubmit={(e) => {
          e.preventDefault();
          setBusy(true);
          setError(null);
          signIn({ token: token.trim() }).then(onSignedIn, (err: unknown) => {
            setBusy(false);
            setError(err instanceof Error ? err.message : String(err));
          });
        }}
      >
        <Field label="API token">
          <input
            type="password"
            autoComplete="off"
            value={token}
            onInput={(e) => setToken(e.currentTarget.value)}
            style={{ width: '300px' }}
          />
        </Field>
        <button class="primary" type="submit" disabled={busy || token.trim() === ''}>
          Sign in
        </button>
      </form>
    </main>
  );
}
