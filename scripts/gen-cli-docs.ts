// Writes docs/cli.md from the CLI's own command tree (the same text `quoll <cmd> --help` prints).
// Run: npx tsx scripts/gen-cli-docs.ts
import { writeFileSync } from 'node:fs';
import type { Command } from 'commander';
import { buildProgram } from '../packages/quoll/src/cli/build-program.js';

function walk(cmd: Command, path: string[], out: string[]): void {
  const name = [...path, cmd.name()].join(' ');
  out.push(`## \`${name}\`\n\n\`\`\`text\n${cmd.helpInformation().trimEnd()}\n\`\`\`\n`);
  for (const sub of cmd.commands) walk(sub, [...path, cmd.name()], out);
}

const sections: string[] = [];
walk(buildProgram(), [], sections);
writeFileSync(
  new URL('../docs/cli.md', import.meta.url),
  `# CLI reference

Generated from the command tree (\`npx tsx scripts/gen-cli-docs.ts\`); \`quoll <command> --help\`
prints the same. Client commands read the server URL and token from \`--url\`/\`--token\`, else
\`QUOLL_URL\`/\`QUOLL_TOKEN\`, else \`<home>/credentials.json\` (\`--home\`, \`$QUOLL_HOME\`, \`./.quoll\`).
Every listing prints a table, or JSON with \`--json\`. On failure a command prints
\`error [<code>]: <message>\` to stderr — with \`--json\`, \`{"error": {"code", "message", "details"?}}\`
on stdout (usage errors have code \`usage\`) — and exits 2 (client error), 3 (server error) or 1
(server unreachable or bad usage). One command uses 3 otherwise: \`admin rotate-key --status\`, which
calls no server, exits 3 when a rotation is blocked (the status printed).

- **Times** print in one form everywhere: ISO 8601 in UTC with milliseconds (\`2026-12-01T13:41:51.123Z\`).
- **Lists** (\`model\`, \`pipeline\`, \`orchestration\`, \`task list\`) cover every workspace the token
  can see; \`-w NAME\` or \`--workspace-id ID\` narrows them to one. \`connection list\` lists the
  instance's connections, with \`-w\` those attached to that workspace.
- **Progress**: on a terminal, uploads, \`pipeline deploy\` and \`orchestration upload --wait\` show a
  progress line on stderr; pipes and \`--json\` get only the output.
- **Pipes**: output piped into a reader that stops early (\`| head\`) ends the command quietly.
- **Completion**: \`source <(quoll completion bash)\` (or \`zsh\`; fish: \`quoll completion fish >
  ~/.config/fish/completions/quoll.fish\`) completes commands, subcommands and flags.

${sections.join('\n')}`,
);
