import type { JSX } from 'preact';
import { useState } from 'preact/hooks';
import type { Connection } from '@quoll/client';
import { sessionClient } from '../session-client.js';
import type { ConsoleSession } from '../session.js';
import { DataTable, ErrorBox, Field, PageTitle, formatTime, useAsync } from '../ui.js';
import { WorkspaceSelect } from './workspace-select.js';

const MASK = '••••••••';

/** Connections with their details masked; reveal (audited), create, attach and detach. */
export function ConnectionsPage({ session }: { session: ConsoleSession }): JSX.Element {
  const list = useAsync(async () => [...(await sessionClient(session).listConnections())], []);
  const workspaces = useAsync(() => sessionClient(session).listWorkspaces(), []);
  const [revealed, setRevealed] = useState<Record<string, { line: string; indented: string }>>({});
  const [error, setError] = useState<string | null>(null);
  const [name, setName] = useState('');
  const [type, setType] = useState('HTTP');
  const [details, setDetails] = useState('{\n  "url": "https://example.com",\n  "token": "secret"\n}');
  const [ws, setWs] = useState<number | null>(null);
  const chosen = ws ?? workspaces.data?.[0]?.id ?? null;
  const fail = (err: unknown): void => setError(err instanceof Error ? err.message : String(err));
  // On one line in the masked text's place (nothing moves); the indented JSON is the tooltip.
  const reveal = (c: Connection): void => {
    c.details().then(
      (d) =>
        setRevealed((r) => ({
          ...r,
          [c.name]: { line: JSON.stringify(d), indented: JSON.stringify(d, null, 2) },
        })),
      fail,
    );
  };
  const attach = (c: Connection, add: boolean): void => {
    const workspace = workspaces.data?.find((w) => w.id === chosen);
    if (!workspace) return;
    (add ? workspace.addConnection(c.name) : workspace.removeConnection(c.name)).then(
      () => list.reload(),
      fail,
    );
  };
  return (
    <div>
      <PageTitle>Connections</PageTitle>
      <ErrorBox error={list.error ?? error} />
      {session.kind === 'admin' ? (
        <form
          class="panel"
          aria-label="Create a connection"
          onSubmit={(e) => {
            e.preventDefault();
            setError(null);
            let parsed: Record<string, unknown>;
            try {
              parsed = JSON.parse(details) as Record<string, unknown>;
            } catch (err) {
              fail(new Error(`Details are not JSON: ${String(err)}`));
              return;
            }
            sessionClient(session)
              .createConnection(name.trim(), type.trim(), parsed)
              .then(() => {
                // The secret leaves the page once it is stored.
                setName('');
                setDetails('{}');
                list.reload();
              }, fail);
          }}
        >
          <h2 style={{ marginTop: 0 }}>Create a connection</h2>
          <div class="row">
            <Field label="Connection name">
              <input value={name} onInput={(e) => setName(e.currentTarget.value)} required />
            </Field>
            <Field label="Type">
              <input value={type} onInput={(e) => setType(e.currentTarget.value)} required />
            </Field>
          </div>
          <Field label="Details (JSON; stored encrypted, shown masked)">
            <textarea value={details} onInput={(e) => setDetails(e.currentTarget.value)} spellcheck={false} />
          </Field>
          <div class="row" style={{ marginTop: '10px' }}>
            <button class="primary" type="submit" disabled={name.trim() === ''}>
              Create connection
            </button>
          </div>
        </form>
      ) : null}
      <p class="notice">Revealing a connection's details is recorded in the audit trail (who and when).</p>
      <div class="row panel">
        <WorkspaceSelect
          workspaces={workspaces.data ?? []}
          value={chosen}
          onChange={setWs}
          label="Attach to / detach from workspace"
        />
      </div>
      <DataTable<Connection>
        label="Connections"
        rows={list.data ?? []}
        empty={list.loading ? 'Loading…' : 'No connection.'}
        loading={list.loading || list.data === undefined}
        rowKey={(c) => c.id}
        columns={[
          { label: 'Name', cell: (c) => c.name },
          { label: 'Type', cell: (c) => c.type },
          { label: 'Workspaces', cell: (c) => c.workspaceNames.join(', ') || '-' },
          { label: 'Created', cell: (c) => formatTime(c.createdAt) },
          {
            label: 'Details',
            cell: (c) => {
              const shown = revealed[c.name];
              return shown !== undefined ? (
                <span class="mono secret" aria-label={`Details of ${c.name}`} title={shown.indented}>
                  {shown.line}
                </span>
              ) : (
                <span class="mono secret" aria-label="masked">
                  {MASK}
                </span>
              );
            },
          },
          {
            label: 'Actions',
            cell: (c) => (
              <div class="row">
                {revealed[c.name] === undefined ? (
                  <button
                    type="button"
                    class="reveal-toggle"
                    onClick={() => reveal(c)}
                    aria-label={`Reveal ${c.name}`}
                  >
                    Reveal
                  </button>
                ) : (
                  <button
                    type="button"
                    class="reveal-toggle"
                    onClick={() => setRevealed(({ [c.name]: _gone, ...rest }) => rest)}
                    aria-label={`Hide ${c.name}`}
                  >
                    Hide
                  </button>
                )}
                <button type="button" onClick={() => attach(c, true)} aria-label={`Attach ${c.name}`}>
                  Attach
                </button>
                <button type="button" onClick={() => attach(c, false)} aria-label={`Detach ${c.name}`}>
                  Detach
                </button>
              </div>
            ),
          },
        ]}
      />
    </div>
  );
}
