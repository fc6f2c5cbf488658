import type { JSX } from 'preact';
import { useState } from 'preact/hooks';
import { sessionClient } from '../session-client.js';
import type { ConsoleSession } from '../session.js';
import { DataTable, ErrorBox, Field, PageTitle, formatTime, useAsync } from '../ui.js';

/** Workspaces the session sees; admins can create one. */
export function WorkspacesPage({ session }: { session: ConsoleSession }): JSX.Element {
  const list = useAsync(() => sessionClient(session).listWorkspaces(), []);
  const [name, setName] = useState('');
  const [error, setError] = useState<string | null>(null);
  return (
    <div>
      <PageTitle>Workspaces</PageTitle>
      <ErrorBox error={list.error ?? error} />
      {session.kind === 'admin' ? (
        <form
          class="row panel"
          onSubmit={(e) => {
            e.preventDefault();
            setError(null);
            sessionClient(session)
              .createWorkspace(name.trim())
              .then(
                () => {
                  setName('');
                  list.reload();
                },
                (err: unknown) => setError(String(err)),
              );
          }}
        >
          <Field label="New workspace name">
            <input value={name} onInput={(e) => setName(e.currentTarget.value)} required />
          </Field>
          <button class="primary" type="submit">
            Create workspace
          </button>
        </form>
      ) : null}
      <DataTable
        label="Workspaces"
        rows={list.data ?? []}
        empty={list.loading ? 'Loading…' : 'No workspace.'}
        loading={list.loading || list.data === undefined}
        rowKey={(w) => String(w.id)}
        columns={[
          { label: 'Id', cell: (w) => w.id },
          { label: 'Name', cell: (w) => w.name },
          { label: 'Default', cell: (w) => (w.isDefault ? 'yes' : '') },
          { label: 'Created', cell: (w) => formatTime(w.createdAt) },
        ]}
      />
    </div>
  );
}
