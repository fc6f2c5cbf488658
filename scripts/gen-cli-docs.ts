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
\`error [<code>]: <message>\` to stderr and exits 2 (client error), 3 (server error) or 1
(server unreachable or bad usage).

${sections.join('\n')}`,
);
