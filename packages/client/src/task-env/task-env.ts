/** The process environment in Node; `{}` where there is none (a browser). */
function processEnv(): Record<string, string | undefined> {
  return (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env ?? {};
}

/**
 * True exactly when the code runs inside a Quoll task run (`QUOLL_TASK_ID` is set).
 * @example if (inTask()) console.log('running as task', process.env.QUOLL_TASK_ID);
 */
export function inTask(env: Record<string, string | undefined> = processEnv()): boolean {
  return env.QUOLL_TASK_ID !== undefined && env.QUOLL_TASK_ID !== '';
}

/**
 * The task's `jsonArgs` (parsed `QUOLL_TASK_ARGS`), or `{}` outside a task.
 * @example const { pipelineName = 'orchestrationpipeline' } = taskArgs();
 */
export function taskArgs<T extends Record<string, unknown> = Record<string, unknown>>(
  env: Record<string, string | undefined> = processEnv(),
): T {
  const raw = env.QUOLL_TASK_ARGS;
  if (raw === undefined || raw === '') return {} as T;
  const parsed = JSON.parse(raw) as unknown;
  return (parsed !== null && typeof parsed === 'object' && !Array.isArray(parsed) ? parsed : {}) as T;
}
