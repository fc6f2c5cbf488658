import type { JSX } from 'preact';
import { useMemo, useState } from 'preact/hooks';
import { Cron } from 'croner';
import type { Orchestration, TaskDto } from '@quoll/client';
import { Link, navigate, useLocation, withQuery } from '../router.js';
import { sessionClient } from '../session-client.js';
import type { ConsoleSession } from '../session.js';
import { DataTable, ErrorBox, Field, PageTitle, Status, formatTime, useAsync } from '../ui.js';

/** The next `count` ticks of a 5-field cron in a zone, read as the server reads it; or the reason it is invalid. */
export function nextTicks(
  schedule: string,
  timezone: string,
  count = 5,
): { ticks: Date[]; error: string | null } {
  const expression = schedule.trim().replace(/,\s+/g, ' ').replace(/\s+/g, ' ');
  if (expression.split(' ').length !== 5) {
    return {
      ticks: [],
      error: 'Give 5 fields: minute hour day-of-month month day-of-week, e.g. */5 * * * *.',
    };
  }
  try {
    const cron = new Cron(expression, {
      timezone: timezone || 'UTC',
      mode: '5-part',
      paused: true,
      fixedTimeRule: 'no-wildcard',
    });
    return { ticks: cron.nextRuns(count), error: null };
  } catch (err) {
    return { ticks: [], error: err instanceof Error ? err.message : String(err) };
  }
}

function formatIn(date: Date, timezone: string): string {
  try {
    return new Intl.DateTimeFormat('en-CA', {
      timeZone: timezone || 'UTC',
      year: 'numeric',
      month: '2-digit',
      day: '2-digit',
      hour: '2-digit',
      minute: '2-digit',
      hour12: false,
      timeZoneName: 'short',
    }).format(date);
  } catch {
    return date.toISOString();
  }
}

const TYPES = ['Temporary Run', 'Scheduled Run', 'Continuous Run'] as const;

/** Tasks with filters, and the form that creates run-once, scheduled and continuous tasks. */
export function TasksPage({ session }: { session: ConsoleSession }): JSX.Element {
  const loc = useLocation();
  const q = loc.query;
  const wsFilter = q.get('workspace') ?? '';
  const typeFilter = q.get('type') ?? '';
  const statusFilter = q.get('status') ?? '';
  const killed = q.get('killed') === '1';
  // Another filter is another list: it opens on its first page.
  const setFilter = (key: string, value: string): void =>
    navigate(withQuery({ [key]: value === '' ? null : value, page: null }), { replace: true });
  const workspaces = useAsync(() => sessionClient(session).listWorkspaces(), []);
  const orchestrations = useAsync(
    async () =>
      [...(await sessionClient(session).listOrchestrations())].filter((o) => o.toJSON().status === 'ready'),
    [],
  );
  const tasks = useAsync(
    async (): Promise<TaskDto[]> =>
      [...(await sessionClient(session).listTasks({ killed }))].map((t) => t.toJSON()),
    [killed],
    5000,
  );
  const rows = (tasks.data ?? []).filter(
    (t) =>
      (wsFilter === '' || String(t.workspaceId) === wsFilter) &&
      (typeFilter === '' || t.type === typeFilter) &&
      (statusFilter === '' || t.status === statusFilter || t.lastRunStatus === statusFilter),
  );
  return (
    <div>
      <PageTitle>Tasks</PageTitle>
      <ErrorBox error={tasks.error} />
      <CreateTask
        session={session}
        orchestrations={orchestrations.data ?? []}
        preselect={q.get('orchestration')}
      />
      <div class="panel row" role="group" aria-label="Filters">
        <Field label="Workspace">
          <select value={wsFilter} onChange={(e) => setFilter('workspace', e.currentTarget.value)}>
            <option value="">All</option>
            {(workspaces.data ?? []).map((w) => (
              <option key={w.id} value={String(w.id)}>
                {w.name}
              </option>
            ))}
          </select>
        </Field>
        <Field label="Type">
          <select value={typeFilter} onChange={(e) => setFilter('type', e.currentTarget.value)}>
            <option value="">All</option>
            {TYPES.map((t) => (
              <option key={t} value={t}>
                {t}
              </option>
            ))}
          </select>
        </Field>
        <Field label="Status">
          <select value={statusFilter} onChange={(e) => setFilter('status', e.currentTarget.value)}>
            <option value="">All</option>
            {[
              'pending',
              'started',
              'pending_kill',
              'killed',
              'running',
              'success',
              'failure',
              'timed_out',
            ].map((s) => (
              <option key={s} value={s}>
                {s}
              </option>
            ))}
          </select>
        </Field>
        <label class="check">
          <input
            type="checkbox"
            checked={killed}
            onChange={(e) => setFilter('killed', e.currentTarget.checked ? '1' : '')}
          />
          Include killed tasks
        </label>
      </div>
      <DataTable<TaskDto>
        label="Tasks"
        rows={rows}
        empty={tasks.loading ? 'Loading…' : 'No task matches.'}
        loading={tasks.loading || tasks.data === undefined}
        rowKey={(t) => t.id}
        columns={[
          { label: 'Task', cell: (t) => <Link href={`/tasks/${t.id}`}>{t.name || t.id.slice(0, 8)}</Link> },
          { label: 'Type', cell: (t) => t.type },
          { label: 'Workspace', cell: (t) => t.workspaceName },
          { label: 'Status', cell: (t) => <Status value={t.status} /> },
          { label: 'Last run', cell: (t) => <Status value={t.lastRunStatus} /> },
          { label: 'Schedule', cell: (t) => (t.schedule ? `${t.schedule} (${t.timezone ?? 'UTC'})` : '-') },
          { label: 'Created', cell: (t) => formatTime(t.createdAt) },
        ]}
      />
    </div>
  );
}

function CreateTask(props: {
  session: ConsoleSession;
  orchestrations: ReadonlyArray<Orchestration>;
  preselect: string | null;
}): JSX.Element {
  const [orch, setOrch] = useState<string>(props.preselect ?? '');
  const [kind, setKind] = useState<'once' | 'scheduled' | 'continuous'>('once');
  const [name, setName] = useState('');
  const [args, setArgs] = useState('{}');
  const [schedule, setSchedule] = useState('*/5 * * * *');
  const [timezone, setTimezone] = useState(Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC');
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const preview = useMemo(() => nextTicks(schedule, timezone), [schedule, timezone]);
  const chosen = props.orchestrations.find((o) => o.id === orch) ?? props.orchestrations[0];
  return (
    <form
      class="panel"
      aria-label="Create a task"
      onSubmit={(e) => {
        e.preventDefault();
        if (!chosen) return;
        let jsonArgs: Record<string, unknown>;
        try {
          jsonArgs = JSON.parse(args) as Record<string, unknown>;
        } catch (err) {
          setError(`Arguments are not JSON: ${String(err)}`);
          return;
        }
        setError(null);
        setBusy(true);
        const created =
          kind === 'once'
            ? chosen.runOnce({ name: name.trim(), jsonArgs })
            : kind === 'scheduled'
              ? chosen.runScheduled({ name: name.trim(), jsonArgs, schedule, timezone })
              : chosen.runContinuously({ name: name.trim(), jsonArgs });
        created.then(
          (task) => navigate(`/tasks/${task.id}`),
          (err: unknown) => {
            setBusy(false);
            setError(String(err));
          },
        );
      }}
    >
      <h2 style={{ marginTop: 0 }}>Create a task</h2>
      <ErrorBox error={error} />
      <div class="row">
        <Field label="Orchestration">
          <select value={chosen?.id ?? ''} onChange={(e) => setOrch(e.currentTarget.value)}>
            {props.orchestrations.map((o) => (
              <option key={o.id} value={o.id}>
                {o.name} ({o.workspaceName})
              </option>
            ))}
          </select>
        </Field>
        <Field label="Kind">
          <select
            value={kind}
            onChange={(e) => setKind(e.currentTarget.value as 'once' | 'scheduled' | 'continuous')}
          >
            <option value="once">Run once</option>
            <option value="scheduled">Scheduled (cron)</option>
            <option value="continuous">Continuous</option>
          </select>
        </Field>
        <Field label="Task name">
          <input value={name} onInput={(e) => setName(e.currentTarget.value)} />
        </Field>
      </div>
      {kind === 'scheduled' ? (
        <div class="schedule">
          <div class="row">
            <Field label="Schedule (cron, 5 fields)">
              <input value={schedule} onInput={(e) => setSchedule(e.currentTarget.value)} class="mono" />
            </Field>
            <Field label="Time zone">
              <input value={timezone} onInput={(e) => setTimezone(e.currentTarget.value)} />
            </Field>
          </div>
          {/* Below the inputs, one line of ticks (or the reason there are none) of a fixed
              height: typing a schedule never moves the form. */}
          <div class="ticks" role="group" aria-labelledby="next-ticks-label">
            <div class="ticks-label" id="next-ticks-label">
              Next five ticks <span class="muted">in {timezone.trim() || 'UTC'}</span>
            </div>
            <div class="ticks-body" aria-live="polite">
              {preview.error ? (
                <p class="bad">{preview.error}</p>
              ) : (
                <ol class="ticks-list mono">
                  {preview.ticks.map((t) => (
                    <li key={t.getTime()}>{formatIn(t, timezone)}</li>
                  ))}
                </ol>
              )}
            </div>
          </div>
        </div>
      ) : null}
      <div style={{ marginTop: '10px' }}>
        <Field label="Arguments (JSON object, given to the run as taskArgs())">
          <textarea
            value={args}
            onInput={(e) => setArgs(e.currentTarget.value)}
            spellcheck={false}
            style={{ minHeight: '60px' }}
          />
        </Field>
      </div>
      <div class="row" style={{ marginTop: '10px' }}>
        <button
          class="primary"
          type="submit"
          disabled={busy || !chosen || (kind === 'scheduled' && preview.error !== null)}
        >
          Create task
        </button>
        {!chosen ? <span class="muted">No ready orchestration: upload one first.</span> : null}
      </div>
    </form>
  );
}
