import type { JSX } from 'preact';
import type { Workspace } from '@quoll/client';
import { Field } from '../ui.js';

/** A labelled select of the workspaces the session sees. */
export function WorkspaceSelect(props: {
  workspaces: readonly Workspace[];
  value: number | null;
  onChange: (id: number) => void;
  label?: string;
}): JSX.Element {
  return (
    <Field label={props.label ?? 'Workspace'}>
      <select
        value={props.value === null ? '' : String(props.value)}
        onChange={(e) => props.onChange(Number(e.currentTarget.value))}
        required
      >
        <option value="" disabled>
          Choose…
        </option>
        {props.workspaces.map((w) => (
          <option key={w.id} value={String(w.id)}>
            {w.name}
          </option>
        ))}
      </select>
    </Field>
  );
}
