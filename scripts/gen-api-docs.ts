// Writes docs/openapi.json (the document the server serves at /v1/openapi.json) and
// docs/http-api.md (every route with its parameters, request bodies, responses and examples),
// from a throwaway embedded server. Run after a build: npx tsx scripts/gen-api-docs.ts
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { resolveServerConfig, startServer } from 'quoll';

/** The parts of JSON Schema the API's schemas use. */
interface Schema {
  type?: string | string[];
  format?: string;
  description?: string;
  enum?: unknown[];
  default?: unknown;
  example?: unknown;
  examples?: unknown[];
  minimum?: number;
  maximum?: number;
  maxItems?: number;
  items?: Schema;
  properties?: Record<string, Schema>;
  required?: string[];
  additionalProperties?: boolean | Schema;
}

interface Parameter {
  in: 'query' | 'path' | 'header';
  name: string;
  required?: boolean;
  description?: string;
  schema?: Schema;
}

interface Media {
  schema?: Schema;
  example?: unknown;
}

interface Operation {
  summary?: string;
  description?: string;
  tags?: string[];
  parameters?: Parameter[];
  requestBody?: { description?: string; required?: boolean; content?: Record<string, Media> };
  responses?: Record<string, { description?: string; content?: Record<string, Media> }>;
  security?: unknown[];
}

/** Example values for fields by name, so generated examples read like real calls. */
const SAMPLE_BY_NAME: Record<string, unknown> = {
  name: 'orchestrationpipeline',
  status: 'ready',
  framework: 'onnx',
  sizeBytes: 2_048_576,
  inferencePath: '/v1/workspaces/1/pipelines/orchestrationpipeline/infer',
  subject: 'admin',
  workspaceName: 'orchestrationworkspace',
  workspaceId: 1,
  id: 1,
  fileName: 'remote_inference.zip',
  sha: '4dd816a96203936dbca3386b6549736382886c84ff5ee4f480e6fb65b3df4e12',
  version: '0195f3c2-8a41-7b4e-9c55-2a1d0c6f4e21',
  type: 'HTTPFILE',
  schedule: '*/5 * * * *',
  timezone: 'Europe/Berlin',
  createdAt: '2026-01-12T13:41:51.123Z',
  updatedAt: '2026-01-12T13:41:52.456Z',
  deployedAt: '2026-01-12T13:41:53.000Z',
  at: '2026-01-12T13:41:51.123Z',
  time: '2026-01-12T13:41:51.123456789Z',
  tensorFields: ['tensor'],
  jsonArgs: { pipeline_name: 'orchestrationpipeline' },
  details: { host: 'https://example.com/data/xtest-1k.arrow' },
  token: 'qk_…',
  message: 'No pipeline named "nope" in this workspace; create it with buildPipeline("nope").',
  code: 'pipeline_not_found',
};

/** Values where a field's name alone is ambiguous: `<parent>.<field>` (or the route's tag for `name`). */
const SAMPLE_BY_PATH: Record<string, unknown> = {
  'inputs.name': 'float_input',
  'inputs.type': 'float32',
  'inputs.shape': [null, 18],
  'outputs.name': 'variable',
  'outputs.type': 'float32',
  'outputs.shape': [null, 1],
  'models.name': 'orchestrationmodel',
  'model.name': 'orchestrationmodel',
  'models.status': 'Running',
  'workspace.name': 'orchestrationworkspace',
  'models:name': 'orchestrationmodel',
  'models:fileName': 'rf_model.onnx',
  'models:framework': 'onnx',
  'connections:name': 'houseprice_arrow_table',
  'workspaces:name': 'orchestrationworkspace',
  'tasks:name': 'house price run once',
  'orchestrations:name': 'houseprice',
  'config.tensorFields': ['tensor'],
  'config.batchConfig': null,
  'steps.modelName': 'orchestrationmodel',
};

/** Which sample applies: the most specific of parent path, route tag, field name. */
function namedSample(name: string, parent: string, tag: string): { value: unknown } | null {
  for (const key of [`${parent}.${name}`, `${tag}:${name}`, name]) {
    if (key in SAMPLE_BY_PATH) return { value: SAMPLE_BY_PATH[key] };
    if (key === name && name in SAMPLE_BY_NAME) return { value: SAMPLE_BY_NAME[name] };
  }
  return null;
}

/** The route tag the current examples are for (e.g. `models`). */
let currentTag = '';

/** A sample value for a schema (its own example, default or first enum value, else by name and type). */
function sample(schema: Schema | undefined, name = '', depth = 0, parent = ''): unknown {
  if (schema === undefined || depth > 6) return null;
  if (schema.example !== undefined) return schema.example;
  if (schema.examples?.[0] !== undefined) return schema.examples[0];
  if (schema.default !== undefined) return schema.default;
  if (schema.enum?.[0] !== undefined) return schema.enum[0];
  const named = name === '' ? null : namedSample(name, parent, currentTag);
  if (named !== null) return named.value;
  const type = Array.isArray(schema.type) ? schema.type.find((t) => t !== 'null') : schema.type;
  switch (type ?? 'any') {
    case 'object': {
      if (schema.properties === undefined) return {};
      return Object.fromEntries(
        Object.entries(schema.properties).map(([k, v]) => [k, sample(v, k, depth + 1, name)]),
      );
    }
    case 'array':
      return [sample(schema.items, name, depth + 1, parent)];
    case 'integer':
      return schema.minimum ?? 1;
    case 'number':
      return 1.5;
    case 'boolean':
      return true;
    case 'string':
      return schema.format === 'binary' ? '<bytes>' : 'text';
    default:
      return null;
  }
}

/** `string`, `integer ≥ 1 ≤ 64`, `"a" | "b"`, `array of object` … */
function typeText(schema: Schema | undefined): string {
  if (schema === undefined) return 'any';
  if (schema.enum !== undefined) return schema.enum.map((v) => `\`${JSON.stringify(v)}\``).join(' \\| ');
  const types = Array.isArray(schema.type)
    ? schema.type
    : schema.type === undefined
      ? ['any']
      : [schema.type];
  const base = types
    .map((t) =>
      t === 'array'
        ? `array of ${typeText(schema.items)}`
        : t === 'string' && schema.format
          ? `${t} (${schema.format})`
          : t,
    )
    .join(' or ');
  const bounds = [
    schema.minimum !== undefined ? `≥ ${schema.minimum}` : '',
    schema.maximum !== undefined ? `≤ ${schema.maximum}` : '',
    schema.maxItems !== undefined ? `at most ${schema.maxItems} items` : '',
  ].filter(Boolean);
  return bounds.length > 0 ? `${base} (${bounds.join(', ')})` : base;
}

const cell = (text: string | undefined): string => (text ?? '').replace(/\|/g, '\\|').replace(/\n/g, ' ');

/** A field table of an object schema, nested objects and arrays of objects flattened with dotted names. */
function fieldRows(schema: Schema, prefix = '', depth = 0): string[] {
  const rows: string[] = [];
  const required = new Set(schema.required ?? []);
  for (const [name, field] of Object.entries(schema.properties ?? {})) {
    const path = `${prefix}${name}`;
    const extra = [
      field.description,
      field.default !== undefined ? `Default \`${JSON.stringify(field.default)}\`.` : '',
    ]
      .filter(Boolean)
      .join(' ');
    rows.push(
      `| \`${path}\` | ${cell(typeText(field))} | ${required.has(name) ? 'yes' : ''} | ${cell(extra)} |`,
    );
    if (depth < 3 && field.properties !== undefined) rows.push(...fieldRows(field, `${path}.`, depth + 1));
    if (depth < 3 && field.items?.properties !== undefined)
      rows.push(...fieldRows(field.items, `${path}[].`, depth + 1));
  }
  if (schema.additionalProperties === false && rows.length > 0) {
    rows.push('| (others) | | | refused: the error names the field and the accepted names |');
  }
  return rows;
}

function schemaBlock(schema: Schema | undefined): string[] {
  if (schema === undefined) return [];
  const out: string[] = [];
  const target = schema.type === 'array' && schema.items !== undefined ? schema.items : schema;
  if (target.properties !== undefined && Object.keys(target.properties).length > 0) {
    if (target !== schema) out.push('An array of:', '');
    out.push('| field | type | required | notes |', '|---|---|---|---|', ...fieldRows(target), '');
  } else if (schema.type !== undefined || schema.description !== undefined) {
    out.push(`${typeText(schema)}${schema.description ? `: ${schema.description}` : ''}`, '');
  }
  return out;
}

function exampleBlock(contentType: string, media: Media): string[] {
  const value = media.example ?? sample(media.schema);
  if (contentType !== 'application/json') return [];
  return ['```json', JSON.stringify(value, null, 2), '```', ''];
}

function operationSection(method: string, path: string, op: Operation): string {
  const out: string[] = [`### \`${method.toUpperCase()} ${path}\``, ''];
  if (op.summary) out.push(`${op.summary}.`.replace(/\.\.$/, '.'), '');
  if (op.description) out.push(op.description, '');
  if (Array.isArray(op.security) && op.security.length === 0) out.push('No token needed.', '');
  const params = op.parameters ?? [];
  if (params.length > 0) {
    out.push('**Parameters**', '', '| name | in | type | required | notes |', '|---|---|---|---|---|');
    const order = { path: 0, query: 1, header: 2 };
    for (const p of [...params].sort((a, b) => order[a.in] - order[b.in])) {
      const notes = [
        p.description,
        p.schema?.default !== undefined ? `Default \`${JSON.stringify(p.schema.default)}\`.` : '',
      ]
        .filter(Boolean)
        .join(' ');
      out.push(
        `| \`${p.name}\` | ${p.in} | ${cell(typeText(p.schema))} | ${p.required ? 'yes' : ''} | ${cell(notes)} |`,
      );
    }
    out.push('');
  }
  const body = op.requestBody?.content;
  if (body !== undefined) {
    out.push(
      `**Request body** (${Object.keys(body)
        .map((t) => `\`${t}\``)
        .join(', ')})${op.requestBody?.description ? `: ${op.requestBody.description}` : ''}`,
      '',
    );
    for (const [type, media] of Object.entries(body)) {
      out.push(...schemaBlock(media.schema), ...exampleBlock(type, media));
    }
  }
  for (const [status, response] of Object.entries(op.responses ?? {})) {
    const types = Object.keys(response.content ?? {});
    const what =
      response.description && response.description !== 'Default Response' ? `: ${response.description}` : '';
    out.push(
      `**${status}**${types.length > 0 ? ` (${types.map((t) => `\`${t}\``).join(', ')})` : ''}${what}`,
      '',
    );
    for (const [type, media] of Object.entries(response.content ?? {})) {
      out.push(...schemaBlock(media.schema), ...exampleBlock(type, media));
    }
  }
  return out.join('\n');
}

const home = await mkdtemp(join(tmpdir(), 'quoll-api-docs-'));
const server = await startServer(resolveServerConfig({ home, port: 0, logging: false }, {}, home));
try {
  const res = await fetch(`${server.url}/v1/openapi.json`, {
    headers: { authorization: `Bearer ${server.adminToken}` },
  });
  const doc = (await res.json()) as { paths: Record<string, Record<string, Operation>> };
  await writeFile(new URL('../docs/openapi.json', import.meta.url), JSON.stringify(doc, null, 2) + '\n');
  const byTag = new Map<string, { index: string[]; sections: string[] }>();
  let operations = 0;
  for (const [path, ops] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(ops)) {
      operations++;
      const tag = op.tags?.[0] ?? 'other';
      currentTag = tag;
      const entry = byTag.get(tag) ?? { index: [], sections: [] };
      entry.index.push(`| \`${method.toUpperCase()}\` | \`${path}\` | ${cell(op.summary)} |`);
      entry.sections.push(operationSection(method, path, op));
      byTag.set(tag, entry);
    }
  }
  const sections = [...byTag].map(
    ([tag, { index, sections: ops }]) =>
      `## ${tag}\n\n| method | path | what |\n|---|---|---|\n${index.join('\n')}\n\n${ops.join('\n\n')}\n`,
  );
  await writeFile(
    new URL('../docs/http-api.md', import.meta.url),
    `# HTTP API

Resource-oriented JSON under \`/v1\`. The server serves the full OpenAPI 3.1 document at
\`GET /v1/openapi.json\` (a copy is in [openapi.json](openapi.json)); this page is generated from
it (\`npm run docs\`, or \`npx tsx scripts/gen-api-docs.ts\` after a build), with every route's
parameters, request body, responses and examples. Every route but \`/v1/health\` needs
\`Authorization: Bearer <token>\` (the SDK's \`client.authHeader()\` gives it).

Errors answer with the status of their code and \`{ "error": { "code", "message", "details"? } }\`,
the code from the [catalogue](errors.md); a body field or a query parameter the route does not
declare is refused with \`invalid_request\` (400) naming it and the accepted ones, and nothing is
done. This holds on every \`/v1\` and \`/v2\` route: one that lists no query parameters takes none,
so a typo such as \`?nmae=\` is an error, never a filter silently ignored. A JSON body field is
taken as the type the route declares, never converted: \`{"ttlSeconds": "10"}\`, \`[10]\` or \`true\`
is \`invalid_request\` (\`body/ttlSeconds must be integer.\`), while query and path parameters,
which are text, are read as the numbers and booleans they spell (\`?createIfNotExist=true\`):

\`\`\`json
{ "error": { "code": "invalid_request", "message": "body/config has an unknown field \\"gpus\\"; accepted: \\"replicas\\", \\"workers\\", \\"cpus\\", \\"memory\\".", "details": { "field": "body/config/gpus", "accepted": ["replicas", "workers", "cpus", "memory"] } } }
{ "error": { "code": "invalid_request", "message": "querystring has an unknown parameter \\"nmae\\"; accepted: \\"name\\", \\"workspaceId\\", \\"workspaceName\\".", "details": { "field": "querystring/nmae", "accepted": ["name", "workspaceId", "workspaceName"] } } }
\`\`\`

The inference endpoint of a deployed pipeline accepts \`application/json\` (records),
\`application/vnd.apache.arrow.file\` and \`application/vnd.apache.arrow.stream\` (at most 1024
record batches and 1024 columns), and answers in the format \`Accept\` asks for (default: the
request's). A large answer is the same answer, written in slices so that the server keeps
answering meanwhile: an Arrow answer of more than 65 536 rows, or of more than 2 097 152 values
(inputs and outputs together), comes as record batches of at most 65 536 rows each (fewer when
its rows are wide). A numeric id in a path or query (\`{workspaceId}\`, \`?workspaceId=\`) is
decimal digits only, 1 to 2147483647, without sign, spaces or leading zeros: \`0x2\`, \`1e3\`,
\`+2\` or \`02\` are refused with \`invalid_request\` (400), never read as another id. Uploads (models, orchestrations) take the
raw file as the body, or \`multipart/form-data\` with a \`file\` part (as Wallaroo's API clients send).
Examples below are generated from the schemas: names and values are illustrative.

${sections.join('\n')}`,
  );
  console.log(
    `wrote docs/openapi.json and docs/http-api.md (${Object.keys(doc.paths).length} paths, ${operations} operations)`,
  );
} finally {
  await server.close();
  await rm(home, { recursive: true, force: true });
}
