import { ApiError } from '../errors/index.js';

/** Names used in URLs: models, pipelines. Letters, digits, `_`, `-`, `.`; 1–128 chars. */
const URL_SAFE_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;
/** Workspace names may also contain spaces (the original's default is "<user> - Default Workspace"). */
const WORKSPACE_NAME = /^[A-Za-z0-9][A-Za-z0-9_. -]{0,127}$/;

/**
 * Checks a user-chosen name; throws `invalid_name` naming the bad value and the rule.
 * @param kind what is being named, for the message (e.g. `pipeline`).
 */
export function validateName(
  kind: 'workspace' | 'model' | 'pipeline' | 'connection' | 'orchestration' | 'task',
  name: unknown,
): string {
  const rule = kind === 'workspace' ? WORKSPACE_NAME : URL_SAFE_NAME;
  if (typeof name !== 'string' || !rule.test(name)) {
    const allowed =
      kind === 'workspace'
        ? 'letters, digits, "_", "-", "." and spaces'
        : 'letters, digits, "_", "-" and "."';
    throw new ApiError(
      'invalid_name',
      `Invalid ${kind} name ${JSON.stringify(name)}: use 1–128 characters, starting with a letter or digit, made of ${allowed}.`,
      { kind, name: typeof name === 'string' ? name : null },
    );
  }
  return name;
}
