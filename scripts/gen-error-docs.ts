// Writes docs/errors.md from the error catalogue (packages/client/src/wire/error-codes.ts).
// Run: npx tsx scripts/gen-error-docs.ts. A test checks that the file and the catalogue agree.
import { writeFileSync } from 'node:fs';
import { ERROR_CODES } from '../packages/client/src/wire/error-codes.js';

const classOf: Record<string, string> = {
  auth: 'AuthError',
  validation: 'ValidationError',
  payload_too_large: 'PayloadTooLargeError',
  not_found: 'NotFoundError',
  conflict: 'ConflictError',
  not_deployed: 'NotDeployedError',
  internal: 'QuollError',
};

const rows = Object.entries(ERROR_CODES).map(
  ([code, e]) => `| \`${code}\` | ${e.status} | \`${classOf[e.kind] ?? 'QuollError'}\` | ${e.summary} |`,
);
writeFileSync(
  new URL('../docs/errors.md', import.meta.url),
  `# Error catalogue

Every error the server returns has the body \`{ "error": { "code", "message", "details"? } }\`.
The \`code\` is one of the stable codes below; the \`message\` names the bad value and the fix.
The SDK rebuilds a typed error from it: every class extends \`QuollError\` (which has \`code\`,
\`status\` and \`details\`); \`EntityNotFoundError\` is an alias of \`NotFoundError\`.
The CLI prints \`error [<code>]: <message>\` and exits with 2 for client errors (every kind but
\`QuollError\`, including bad input the SDK refuses before sending), 3 for server errors (5xx)
and 1 when the server cannot be reached.

The catalogue lives in \`packages/client/src/wire/error-codes.ts\`; this page is generated from it
(\`npx tsx scripts/gen-error-docs.ts\`) and a test fails when the two disagree.

| code | HTTP | SDK class | meaning |
|---|---|---|---|
${rows.join('\n')}

## States on \`GET /v1/health\` (not error answers)

- \`schema_ahead\` (\`schema.status\`, on a node of a cluster): a node of a newer release
  migrated the shared database past this node's code (\`schema.code\` < \`schema.database\`).
  The node keeps serving and stays ready (\`GET /v2/health/ready\` answers 200 with the same
  \`schema\`, without \`message\`); \`status\` is \`degraded\` and the node logs it once per version. Replace it with
  the newer release ([distributed.md](distributed.md#upgrades)): started again, this release
  refuses that schema, naming both versions.
`,
);
