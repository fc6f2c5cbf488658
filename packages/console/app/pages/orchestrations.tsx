import type { JSX } from 'preact';
import { useState } from 'preact/hooks';
import type { Orchestration } from '@quoll/client';
import { Link } from '../router.js';
import { clientIn, sessionClient } from '../session-client.js';
import type { ConsoleSession } from '../session.js';
import { DataTable, DropZone, ErrorBox, Field, PageTitle, Status, formatTime, useAsync } from '../ui.js';
import { WorkspaceSelect } from './workspace-select.js';

function PackagingLog({ orchestration }: { orchestration: Orchestration }): JSX.Element {
  const logs = useAsync(async () => [...(await orchestration.packagingLogs())], [orchestration]);
  return (
    <pre class="log" aria-label={`Packaging log of ${orchestration.name}`}>
      {logs.error ?? (logs.data ?? []).map((l) => `${l.time} ${l.source} ${l.line}`).join('\n')}
    </pre>
  );
}

/** Orchestrations: zip upload by drag and drop, packaging status and logs, and a way to run them. */
export function OrchestrationsPage({ session }: { session: ConsoleSession }): JSX.Element {
  const workspaces = useAsync(() => sessionClient(session).listWorkspaces(), []);
  const [packaging, setPackaging] = useState(false);
  const list = useAsync(
    async () => {
      const all = [...(await sessionClient(session).listOrchestrations())].reverse();
      setPackaging(
        all.some((o) => o.toJSON().status === 'packaging' || o.toJSON().status === 'pending_packaging'),
      );
      return all;
    },
    [],
    packaging ? 1000 : 10000,
  );
  const [ws, setWs] = useState<number | null>(null);
  const [name, setName] = useState('');
  const [status, setStatus] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [open, setOpen] = useState<string | null>(null);
  /** The orchestration this page uploaded last: its message follows its packaging. */
  const [uploaded, setUploaded] = useState<{ id: string; name: string } | null>(null);
  const chosen = ws ?? workspaces.data?.[0]?.id ?? null;
  const upload = (file: File): void => {
    const workspace = workspaces.data?.find((w) => w.id === chosen);
    if (!workspace) {
      setError('Choose a workspace first.');
      return;
    }
    setError(null);
    setUploaded(null);
    setStatus(`Uploading ${file.name}…`);
    clientIn(session, workspace)
      .uploadOrchestration(
        { bytes: file, fileName: file.name },
        { name: name.trim() || file.name.replace(/\.zip$/, '') },
      )
      .then(
        (o) => {
          setStatus(null);
          setUploaded({ id: o.id, name: o.name });
          setPackaging(true);
          list.reload();
        },
        (err: unknown) => {
          setStatus(null);
          setError(String(err));
        },
      );
  };
  const uploadedStatus =
    uploaded === null ? undefined : list.data?.find((o) => o.id === uploaded.id)?.toJSON().status;
  const message =
    status ??
    (uploaded === null
      ? null
      : uploadedStatus === 'ready'
        ? `Uploaded ${uploaded.name}; ready.`
        : uploadedStatus === 'error'
          ? `Uploaded ${uploaded.name}; packaging failed (see its packaging log).`
          : `Uploaded ${uploaded.name}; packaging…`);
  return (
    <div>
      <PageTitle>Orchestrations</PageTitle>
      <ErrorBox error={list.error ?? error} />
      <div class="panel" role="group" aria-label="Upload an orchestration">
        <h2 style={{ marginTop: 0 }}>Upload an orchestration</h2>
        <div class="row" style={{ marginBottom: '10px' }}>
          <WorkspaceSelect workspaces={workspaces.data ?? []} value={chosen} onChange={setWs} />
          <Field label="Orchestration name (default: the file name)">
            <input value={name} onInput={(e) => setName(e.currentTarget.value)} />
          </Field>
        </div>
        <DropZone label="Orchestration zip" accept=".zip,application/zip" onFile={upload} />
        <p aria-live="polite">{message}</p>
      </div>
      <DataTable<Orchestration>
        label="Orchestrations"
        rows={list.data ?? []}
        empty={list.loading ? 'Loading…' : 'No orchestration uploaded yet.'}
        loading={list.loading || list.data === undefined}
        rowKey={(o) => o.id}
        columns={[
          { label: 'Name', cell: (o) => o.name },
          { label: 'Workspace', cell: (o) => o.workspaceName },
          { label: 'Status', cell: (o) => <Status value={o.toJSON().status} /> },
          {
            label: 'SHA',
            cell: (o) => (
              <span class="mono" title={o.sha}>
                {o.sha.slice(0, 12)}…
              </span>
            ),
          },
          { label: 'Updated', cell: (o) => formatTime(o.updatedAt) },
          {
            label: 'Actions',
            cell: (o) => (
              <div>
                <div class="row center">
                  <button
                    type="button"
                    aria-expanded={open === o.id}
                    onClick={() => setOpen(open === o.id ? null : o.id)}
                  >
                    {open === o.id ? 'Hide packaging log' : 'Packaging log'}
                  </button>
                  {o.toJSON().status === 'ready' ? (
                    <Link href={`/tasks?orchestration=${o.id}`}>Create a task</Link>
                  ) : null}
                </div>
                {o.error ? <p class="bad">{o.error}</p> : null}
                {open === o.id ? <PackagingLog orchestration={o} /> : null}
              </div>
            ),
          },
        ]}
      />
    </div>
  );
}
