import type { JSX } from 'preact';
import { useState } from 'preact/hooks';
import type { ModelVersion } from '@quoll/client';
import { clientIn, sessionClient } from '../session-client.js';
import type { ConsoleSession } from '../session.js';
import { DataTable, DropZone, ErrorBox, Field, PageTitle, formatTime, useAsync } from '../ui.js';
import { WorkspaceSelect } from './workspace-select.js';

const shape = (s: ReadonlyArray<number | string | null>): string =>
  `[${s.map((d) => (d === null ? '?' : String(d))).join(', ')}]`;

/** Every model version (name, version, SHA, inputs/outputs, config) and the upload form. */
export function ModelsPage({ session }: { session: ConsoleSession }): JSX.Element {
  const workspaces = useAsync(() => sessionClient(session).listWorkspaces(), []);
  const models = useAsync(() => sessionClient(session).listModels({ allWorkspaces: true }), []);
  const [ws, setWs] = useState<number | null>(null);
  const [name, setName] = useState('');
  const [file, setFile] = useState<File | null>(null);
  const [progress, setProgress] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  const names = new Map((workspaces.data ?? []).map((w) => [w.id, w.name]));
  const chosen = ws ?? workspaces.data?.[0]?.id ?? null;
  return (
    <div>
      <PageTitle>Models</PageTitle>
      <ErrorBox error={models.error ?? workspaces.error ?? error} />
      <form
        class="panel"
        aria-label="Upload a model"
        onSubmit={(e) => {
          e.preventDefault();
          const workspace = workspaces.data?.find((w) => w.id === chosen);
          if (!workspace || !file) return;
          setError(null);
          setProgress('Uploading…');
          clientIn(session, workspace)
            .uploadModel(name.trim(), file, { fileName: file.name })
            .then(
              (v) => {
                setProgress(`Uploaded ${v.name} version ${v.version}.`);
                setFile(null);
                models.reload();
              },
              (err: unknown) => {
                setProgress(null);
                setError(String(err));
              },
            );
        }}
      >
        <h2 style={{ marginTop: 0 }}>Upload a model</h2>
        <div class="row">
          <WorkspaceSelect workspaces={workspaces.data ?? []} value={chosen} onChange={setWs} />
          <Field label="Model name">
            <input value={name} onInput={(e) => setName(e.currentTarget.value)} required />
          </Field>
        </div>
        <div style={{ margin: '10px 0' }}>
          <DropZone label="ONNX model file" accept=".onnx" onFile={(f) => setFile(f)} />
        </div>
        <div class="row">
          {/* The file input says when none is chosen; a dropped file shows here. */}
          {file ? <span class="muted">{`${file.name} (${file.size} bytes)`}</span> : null}
          <button class="primary" type="submit" disabled={!file || name.trim() === '' || chosen === null}>
            Upload model
          </button>
          <span aria-live="polite">{progress}</span>
        </div>
      </form>
      <DataTable<ModelVersion>
        label="Model versions"
        rows={models.data ?? []}
        empty={models.loading ? 'Loading…' : 'No model uploaded yet.'}
        loading={models.loading || models.data === undefined}
        rowKey={(m) => `${m.workspaceId}/${m.name}/${m.version}`}
        columns={[
          { label: 'Name', cell: (m) => m.name },
          { label: 'Workspace', cell: (m) => names.get(m.workspaceId) ?? m.workspaceId },
          { label: 'Version', cell: (m) => <span class="mono">{m.version}</span> },
          {
            label: 'SHA-256',
            cell: (m) => (
              <span class="mono" title={m.sha}>
                {m.sha.slice(0, 12)}…
              </span>
            ),
          },
          {
            label: 'Inputs',
            cell: (m) => m.inputs.map((i) => `${i.name} ${i.type}${shape(i.shape)}`).join(', '),
          },
          {
            label: 'Outputs',
            cell: (m) => m.outputs.map((o) => `${o.name} ${o.type}${shape(o.shape)}`).join(', '),
          },
          {
            label: 'Config',
            cell: (m) =>
              [
                m.config.tensorFields ? `tensor fields ${m.config.tensorFields.join(', ')}` : '',
                m.config.batchConfig ? `batch ${m.config.batchConfig}` : '',
              ]
                .filter(Boolean)
                .join('; ') || '-',
          },
          { label: 'Uploaded', cell: (m) => formatTime(m.createdAt) },
        ]}
      />
    </div>
  );
}
