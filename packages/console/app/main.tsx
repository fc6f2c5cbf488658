import { render, type JSX } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import './styles.css';
import { Link, match, navigate, useLocation } from './router.js';
import { loadSession, signInWithLink, signOut, type ConsoleSession } from './session.js';
import { ErrorBox, lazyComponent, prefetchWhenIdle } from './ui.js';
import { SignInPage } from './pages/sign-in.js';
import { OverviewPage, prefetchOverview } from './pages/overview.js';

// The entry chunk holds the shell, sign-in and the overview (the first page); every other page
// is its own chunk (the SDK, Arrow, uPlot and croner come with the pages that use them).
const pages = {
  workspaces: () => import('./pages/workspaces.js').then((m) => m.WorkspacesPage),
  models: () => import('./pages/models.js').then((m) => m.ModelsPage),
  pipelines: () => import('./pages/pipelines.js').then((m) => m.PipelinesPage),
  pipeline: () => import('./pages/pipeline.js').then((m) => m.PipelinePage),
  connections: () => import('./pages/connections.js').then((m) => m.ConnectionsPage),
  orchestrations: () => import('./pages/orchestrations.js').then((m) => m.OrchestrationsPage),
  tasks: () => import('./pages/tasks.js').then((m) => m.TasksPage),
  task: () => import('./pages/task.js').then((m) => m.TaskPage),
};
const WorkspacesPage = lazyComponent(pages.workspaces);
const ModelsPage = lazyComponent(pages.models);
const PipelinesPage = lazyComponent(pages.pipelines);
const PipelinePage = lazyComponent(pages.pipeline);
const ConnectionsPage = lazyComponent(pages.connections);
const OrchestrationsPage = lazyComponent(pages.orchestrations);
const TasksPage = lazyComponent(pages.tasks);
const TaskPage = lazyComponent(pages.task);

/** The chunk a path needs (fetched at start, beside the session check), or null. */
function chunkOf(path: string): (() => Promise<unknown>) | null {
  const section = path.split('/')[1] ?? '';
  if (section === 'pipelines') return path.split('/').length > 3 ? pages.pipeline : pages.pipelines;
  if (section === 'tasks') return path.split('/').length > 2 ? pages.task : pages.tasks;
  return section in pages ? pages[section as keyof typeof pages] : null;
}
void chunkOf(window.location.pathname)?.();
// Requests that need no rendering leave now, while the page is still being built: signing in
// with a link's code, then the overview (the page a sign-in lands on); on a reload of `/`, the
// overview beside the session check (it fails harmlessly when not signed in).
const linkSignIn = signInWithLink();
if (linkSignIn !== null) linkSignIn.then(prefetchOverview, () => undefined);
else if (window.location.pathname === '/') prefetchOverview();

const NAV: ReadonlyArray<[string, string]> = [
  ['/', 'Overview'],
  ['/workspaces', 'Workspaces'],
  ['/models', 'Models'],
  ['/pipelines', 'Pipelines'],
  ['/connections', 'Connections'],
  ['/orchestrations', 'Orchestrations'],
  ['/tasks', 'Tasks'],
];

type Theme = 'light' | 'dark';

function initialTheme(): Theme {
  const saved = localStorage.getItem('quoll-theme');
  if (saved === 'light' || saved === 'dark') return saved;
  return window.matchMedia('(prefers-color-scheme: dark)').matches ? 'dark' : 'light';
}

function Page({ session, path }: { session: ConsoleSession; path: string }): JSX.Element {
  let params: Record<string, string> | null;
  if (path === '/') return <OverviewPage session={session} />;
  if (path === '/workspaces') return <WorkspacesPage session={session} />;
  if (path === '/models') return <ModelsPage session={session} />;
  if (path === '/pipelines') return <PipelinesPage session={session} />;
  if ((params = match('/pipelines/:ws/:name', path)))
    return (
      // Keyed: another pipeline (back/forward between two) is a new page, none of the last one's state kept.
      <PipelinePage
        key={`${params.ws}/${params.name}`}
        session={session}
        workspaceId={Number(params.ws)}
        name={params.name!}
      />
    );
  if (path === '/connections') return <ConnectionsPage session={session} />;
  if (path === '/orchestrations') return <OrchestrationsPage session={session} />;
  if (path === '/tasks') return <TasksPage session={session} />;
  // Keyed: another task (a jump back in the history from one task to another) is a new page — the
  // last task's runs and its task object, which the runs are read from, are not kept.
  if ((params = match('/tasks/:id', path)))
    return <TaskPage key={params.id} session={session} id={params.id!} />;
  return (
    <div>
      <h1>Not found</h1>
      <p>
        No console page at <code>{path}</code>. <Link href="/">Go to the overview</Link>.
      </p>
    </div>
  );
}

function App({ signedIn }: { signedIn?: ConsoleSession }): JSX.Element {
  const loc = useLocation();
  const [session, setSession] = useState<ConsoleSession | null | undefined>(signedIn);
  const [error, setError] = useState<string | null>(null);
  const [theme, setTheme] = useState<Theme>(initialTheme);
  // Set while rendering (not in an effect): the pages below read it as they render (charts).
  document.documentElement.dataset.theme = theme;
  useEffect(() => {
    localStorage.setItem('quoll-theme', theme);
  }, [theme]);
  useEffect(() => {
    // Signed in just now: the sign-in answer was the session (no second round trip).
    if (loc.path === '/sign-in' || session) return;
    loadSession().then(setSession, (err: unknown) => setError(String(err)));
  }, [loc.path === '/sign-in']);
  // Once a page is on screen, the other pages' chunks load in idle time (navigation stays instant).
  useEffect(() => {
    if (session) prefetchWhenIdle(Object.values(pages));
  }, [session !== null && session !== undefined]);

  if (loc.path === '/sign-in') {
    return (
      <SignInPage
        onSignedIn={(s) => {
          setSession(s);
          navigate('/', { replace: true });
        }}
      />
    );
  }
  if (error) return <ErrorBox error={error} />;
  if (session === undefined) return <p class="muted boot">Loading…</p>;
  if (session === null) {
    navigate('/sign-in', { replace: true });
    return <p class="muted boot">Sign in needed…</p>;
  }
  const section = '/' + (loc.path.split('/')[1] ?? '');
  return (
    <div class="shell">
      <nav class="nav" aria-label="Console">
        <Link class="brand" href="/">
          Quoll
        </Link>
        {NAV.map(([href, label]) => (
          <Link key={href} class="item" href={href} aria-current={section === href ? 'page' : undefined}>
            {label}
          </Link>
        ))}
        <div class="spacer" />
        <p class="who">
          Signed in as <strong>{session.subject}</strong>
          {session.kind === 'workspace' ? ` (workspace ${String(session.workspaceId)} only)` : ' (admin)'}
        </p>
        <button
          type="button"
          onClick={() => setTheme(theme === 'dark' ? 'light' : 'dark')}
          aria-pressed={theme === 'dark'}
        >
          {theme === 'dark' ? 'Light theme' : 'Dark theme'}
        </button>
        <button
          type="button"
          onClick={() => {
            void signOut(session).then(() => {
              setSession(null);
            });
          }}
        >
          Sign out
        </button>
      </nav>
      <main id="main">
        <Page session={session} path={loc.path} />
      </main>
    </div>
  );
}

const root = document.getElementById('app')!;
if (linkSignIn === null) render(<App />, root);
else {
  // Opened from a sign-in link: nothing is drawn until the code has been exchanged (a few
  // hundred ms at most), so the main thread is free to send the overview request the moment
  // the session exists; then the overview is the first page drawn. If signing in fails, the
  // sign-in page shows why.
  linkSignIn.then(
    (session) => {
      window.history.replaceState(null, '', '/');
      render(<App signedIn={session} />, root);
    },
    () => render(<App />, root),
  );
}
