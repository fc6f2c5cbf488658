import type { JSX } from 'preact';
import { useState } from 'preact/hooks';
import type { PipelineStatusDto } from '@quoll/client';
import { Link, navigate } from '../router.js';
import { clientIn, sessionClient } from '../session-client.js';
import type { ConsoleSession } from '../session.js';
import { DataTable, ErrorBox, Field, PageTitle, Status, formatTime, useAsync } from '../ui.js';
import { WorkspaceSelect } from './workspace-select.js';

interface Row {
  workspaceId: number;
  workspaceName: string;
  name: string;
  createdAt: string;
  status: PipelineStatusDto;
}

/** Every pipeline with its status, and a form that builds (and deploys) one from a model. */
export function PipelinesPage({ session }: { session: ConsoleSession }): JSX.Element {
  const workspaces = useAsync(() => sessionClient(session).listWorkspaces(), []);
  const models = useAsync(() => sessionClient(session).listModels({ allWorkspaces: true }), []);
  const list = useAsync(async (): Promise<Row[]> => {
    const client = sessionClient(session);
    const [pipelines, ws] = await Promise.all([
      client.listPipelines({ allWorkspaces: true }),
      client.listWorkspaces(),
    ]);
    const names = new Map(ws.map((w) => [w.id, w.name]));
    return Promise.all(
      pipelines.map(async (p) => ({
        workspaceId: p.workspaceId,
        workspaceName: names.get(p.workspaceId) ?? String(p.workspaceId),
        name: p.name,
        createdAt: p.createdAt,
        status: await p.status(),
      })),
    );
  }, []);
  const [ws, setWs] = useState<number | null>(null);
  const [name, setName] = useState('');
  const [model, setModel] = useState('');
  const [deploy, setDeploy] = useState(true);
  const [busy, setBusy] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  const chosen = ws ?? workspaces.data?.[0]?.id ?? null;
  const inWs = (models.data ?? []).filter((m) => m.workspaceId === chosen);
  return (
    <div>
      <PageTitle>Pipelines</PageTitle>
      <ErrorBox error={list.error ?? workspaces.error ?? models.error ?? error} />
      <form
        class="panel"
        aria-label="Build a pipeline"
        onSubmit={(e) => {
          e.preventDefault();
          const workspace = workspaces.data?.find((w) => w.id === chosen);
          const version = inWs.find((m) => `${m.name}@${m.version}` === model) ?? inWs[0];
          if (!workspace || !version) return;
          setError(null);
          setBusy('Building…');
          void (async () => {
            const client = clientIn(session, workspace);
            const pipeline = await client.buildPipeline(name.trim());
            await pipeline.clear();
            await pipeline.addModelStep(version);
            if (deploy) {
              setBusy('Deploying…');
              await pipeline.deploy();
            }
            navigate(`/pipelines/${workspace.id}/${encodeURIComponent(pipeline.name)}`);
          })().catch((err: unknown) => {
            setBusy(null);
            setError(String(err));
          });
        }}
      >
        <h2 style={{ marginTop: 0 }}>Build a pipeline</h2>
        <div class="row">
          <WorkspaceSelect workspaces={workspaces.data ?? []} value={chosen} onChange={setWs} />
          <Field label="Pipeline name">
            <input value={name} onInput={(e) => setName(e.currentTarget.value)} required />
          </Field>
          <Field label="Model step">
            <select value={model} onChange={(e) => setModel(e.currentTarget.value)}>
              {inWs.map((m) => (
                <option key={`${m.name}@${m.version}`} value={`${m.name}@${m.version}`}>
                  {m.name} ({m.version.slice(0, 8)})
                </option>
              ))}
            </select>
          </Field>
          <label class="check">
            <input type="checkbox" checked={deploy} onChange={(e) => setDeploy(e.currentTarget.checked)} />
            Deploy it
          </label>
          <button
            class="primary"
            type="submit"
            disabled={busy !== null || inWs.length === 0 || name.trim() === ''}
          >
            Build pipeline
          </button>
          <span aria-live="polite">{busy}</span>
        </div>
        {chosen !== null && inWs.length === 0 && !models.loading ? (
          <p class="muted">
            This workspace has no model yet: <Link href="/models">upload one</Link>.
          </p>
        ) : null}
      </form>
      <DataTable<Row>
        label="Pipelines"
        rows={list.data ?? []}
        empty={list.loading ? 'Loading…' : 'No pipeline yet.'}
        loading={list.loading || list.data === undefined}
        rowKey={(p) => `${p.workspaceId}/${p.name}`}
        columns={[
          {
            label: 'Pipeline',
            cell: (p) => (
              <Link href={`/pipelines/${p.workspaceId}/${encodeURIComponent(p.name)}`}>{p.name}</Link>
            ),
          },
          { label: 'Workspace', cell: (p) => p.workspaceName },
          { label: 'Status', cell: (p) => <Status value={p.status.status} /> },
          { label: 'Version', cell: (p) => <span class="mono">{p.status.version?.slice(0, 8) ?? '-'}</span> },
          { label: 'Created', cell: (p) => formatTime(p.createdAt) },
        ]}
      />
    </div>
  );
}
