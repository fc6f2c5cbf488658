/**
 * Server and SDK messages name SDK calls in their hints (`listOrchestrations() shows …`); the CLI
 * says the same in its own commands. Each rule rewrites one call form; text without one is left
 * as it is.
 */
const RULES: readonly [RegExp, (...groups: string[]) => string][] = [
  [
    /getWorkspace\("([^"]*)", \{ createIfNotExist: true \}\)/g,
    (name) => `quoll workspace get ${name} --create`,
  ],
  [/getWorkspace\("([^"]*)"\)/g, (name) => `quoll workspace get ${name}`],
  [/createWorkspace\("([^"]*)"\)/g, (name) => `quoll workspace create ${name}`],
  [/buildPipeline\("([^"]*)"\)/g, (name) => `quoll pipeline create ${name}`],
  [/listWorkspaces\(\)/g, () => 'quoll workspace list'],
  [/listModels\(\)/g, () => 'quoll model list'],
  [/listPipelines\(\)/g, () => 'quoll pipeline list'],
  [/listOrchestrations\(\)/g, () => 'quoll orchestration list'],
  [/listTasks\(\)/g, () => 'quoll task list'],
  [/listConnections\(\)/g, () => 'quoll connection list'],
  [/uploadModel\(\)/g, () => 'quoll model upload'],
  [/addModelStep\(model\)/g, () => 'quoll pipeline add-step <pipeline> <model>'],
  [/\b(before |call )deploy\(\)/g, (before) => `${before}quoll pipeline deploy <pipeline>`],
  [/Use lastRuns\(\) on its task to see run ids/g, () => '"quoll task status <task-id>" lists its run ids'],
  [/lastRuns\(\)/g, () => 'quoll task status <task-id>'],
  [/packagingLogs\(\)/g, () => 'quoll orchestration logs <id>'],
  [/\bexportLogs\b/g, () => 'quoll pipeline logs --export <dir>'],
  [/pass new Client\(\{ url, token \}\)/g, () => 'pass --url and --token'],
];

/**
 * The message with SDK calls replaced by the CLI commands that do the same.
 * @example cliTerms('No orchestration has id "x"; listOrchestrations() shows the ones you can use.')
 *   // 'No orchestration has id "x"; quoll orchestration list shows the ones you can use.'
 */
export function cliTerms(message: string): string {
  let text = message;
  for (const [pattern, replace] of RULES)
    text = text.replace(pattern, (_m, ...groups: unknown[]) => replace(...groups.map(String)));
  return text;
}
