import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { tableToIPC } from 'apache-arrow';
import { MEDIA_TYPES } from '@quoll/client/wire';
import { formatOfMediaType } from '../../inference/index.js';
import { encodeLogPage } from '../../logs/index.js';
import type { LogPage, LogQuery } from '../../logs/index.js';
import { ApiError } from '../../errors/index.js';
import { negotiateFormat } from './accept-header.js';
import type { ServerContext } from '../server-context.js';
import { workspaceIdOf } from '../server-context.js';

/** Query string of the logs route, as it arrives (every value a string). */
interface LogsQueryString {
  start?: string;
  end?: string;
  limit?: string;
  cursor?: string;
  order?: string;
  maxBytes?: string;
  columns?: string;
}

/** Largest `maxBytes` a logs query may ask for: 64 MiB. */
export const MAX_LOG_PAGE_BYTES = 64 * 1024 * 1024;

/** Response headers that carry a page's flags (the same in JSON and Arrow answers). */
export const LOG_PAGE_HEADERS = {
  rows: 'x-quoll-rows',
  truncated: 'x-quoll-truncated',
  schemaChanged: 'x-quoll-schema-changed',
  nextCursor: 'x-quoll-next-cursor',
  schemaId: 'x-quoll-schema-id',
} as const;

/**
 * Parses a time bound: epoch milliseconds (digits) or an RFC 3339 date-time
 * (`2024-04-16T14:47:43.370Z`, `2024-04-16T16:47:43+02:00`). Throws `invalid_time_range`.
 */
export function parseLogTime(name: 'start' | 'end', raw: string): number {
  const text = raw.trim();
  if (/^-?\d+(\.\d+)?$/.test(text)) return Number(text);
  // Date-time with an explicit offset only: a zone-less string would depend on the server's zone.
  const rfc3339 = /^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$/;
  const ms = rfc3339.test(text) ? Date.parse(text.replace(' ', 'T')) : NaN;
  if (!Number.isFinite(ms)) {
    throw new ApiError(
      'invalid_time_range',
      `Log ${name} "${raw}" is neither epoch milliseconds nor an RFC 3339 date-time with a zone (e.g. 2024-04-16T14:47:43Z).`,
      { [name]: raw },
    );
  }
  return ms;
}

function positiveInt(name: string, raw: string | undefined): number | undefined {
  if (raw === undefined || raw === '') return undefined;
  const n = /^\d+$/.test(raw.trim()) ? Number(raw) : NaN;
  if (!Number.isSafeInteger(n) || n < 1) {
    throw new ApiError('invalid_request', `Log ${name} must be a positive integer; got "${raw}".`, {
      [name]: raw,
    });
  }
  return n;
}

/** Turns the query string into a store query; the store checks the combination (both or neither bound, order…). */
function toLogQuery(q: LogsQueryString): LogQuery {
  const query: LogQuery = {};
  if (q.start !== undefined && q.start !== '') query.start = parseLogTime('start', q.start);
  if (q.end !== undefined && q.end !== '') query.end = parseLogTime('end', q.end);
  const limit = positiveInt('limit', q.limit);
  if (limit !== undefined) query.limit = limit;
  const maxBytes = positiveInt('maxBytes', q.maxBytes);
  if (maxBytes !== undefined && maxBytes > MAX_LOG_PAGE_BYTES) {
    // One page is built in memory; a bigger one is what exportLogs (pages by cursor) is for.
    throw new ApiError(
      'invalid_request',
      `Log maxBytes must be at most ${MAX_LOG_PAGE_BYTES} (64 MiB); got ${maxBytes}. Page with the cursor or use exportLogs for more.`,
      { maxBytes, max: MAX_LOG_PAGE_BYTES },
    );
  }
  if (maxBytes !== undefined) query.maxBytes = maxBytes;
  if (q.cursor !== undefined && q.cursor !== '') query.cursor = q.cursor;
  if (q.order !== undefined && q.order !== '') {
    const order = q.order.toLowerCase();
    if (order !== 'asc' && order !== 'desc') {
      throw new ApiError('invalid_request', `Log order must be "asc" or "desc"; got "${q.order}".`, {
        order: q.order,
      });
    }
    query.order = order;
  }
  return query;
}

/** Most entries a `columns` list may hold. */
export const MAX_LOG_COLUMNS = 256;

/**
 * Parses `columns`: comma-separated column names, or prefixes ending in `*` (`out.*` = every
 * output). Throws `invalid_request` on an empty entry or too many entries.
 */
export function parseLogColumns(raw: string): string[] {
  const entries = raw.split(',').map((c) => c.trim());
  if (entries.length > MAX_LOG_COLUMNS || entries.some((c) => c === '' || c === '*')) {
    throw new ApiError(
      'invalid_request',
      `Log columns must be 1 to ${MAX_LOG_COLUMNS} comma-separated column names or prefixes ending in "*" (e.g. time,out.*); got "${raw.length > 200 ? `${raw.slice(0, 200)}…` : raw}".`,
      { columns: raw.length > 200 ? `${raw.slice(0, 200)}…` : raw },
    );
  }
  return entries;
}

/**
 * The page with only the columns `wanted` names (exact names, or prefixes ending in `*`), in the
 * page's own column order. A name no column of this page has is skipped: pages of a query can
 * have different schemas.
 */
export function selectLogColumns(page: LogPage, wanted: readonly string[]): LogPage {
  const exact = new Set(wanted.filter((c) => !c.endsWith('*')));
  const prefixes = wanted.filter((c) => c.endsWith('*')).map((c) => c.slice(0, -1));
  const names = page.table.schema.fields
    .map((f) => f.name)
    .filter((n) => exact.has(n) || prefixes.some((p) => n.startsWith(p)));
  if (names.length === page.table.schema.fields.length) return page;
  return { ...page, table: page.table.select(names) };
}

type LogAnswer = 'json' | 'arrow-stream' | 'arrow-file';

/** What the logs endpoint can answer; JSON unless Accept asks for Arrow. */
const LOG_ANSWERS: readonly LogAnswer[] = ['json', 'arrow-stream', 'arrow-file'];

function negotiate(req: FastifyRequest): LogAnswer {
  const accept = req.headers.accept;
  const answer = negotiateFormat(accept, LOG_ANSWERS, formatOfMediaType, 'json');
  if (answer !== null) return answer;
  throw new ApiError(
    'not_acceptable',
    `Accept "${accept ?? ''}" names no format the logs endpoint produces; ask for ${MEDIA_TYPES.json}, ${MEDIA_TYPES.arrowStream} or ${MEDIA_TYPES.arrowFile}.`,
  );
}

function send(reply: FastifyReply, page: LogPage, answer: LogAnswer): FastifyReply {
  void reply
    .header(LOG_PAGE_HEADERS.rows, String(page.rows))
    .header(LOG_PAGE_HEADERS.truncated, String(page.truncated))
    .header(LOG_PAGE_HEADERS.schemaChanged, String(page.schemaChanged));
  if (page.nextCursor !== null) void reply.header(LOG_PAGE_HEADERS.nextCursor, page.nextCursor);
  if (page.schemaId !== null) void reply.header(LOG_PAGE_HEADERS.schemaId, page.schemaId);
  switch (answer) {
    case 'arrow-stream':
      return reply.type(MEDIA_TYPES.arrowStream).send(encodeLogPage(page, 'arrow-stream'));
    case 'arrow-file':
      return reply.type(MEDIA_TYPES.arrowFile).send(tableToIPC(page.table, 'file'));
    case 'json':
      // Built as text: a page can hold 100k records, which a response schema would re-walk.
      return reply
        .type(MEDIA_TYPES.json)
        .send(
          `{"records":${encodeLogPage(page, 'json')},"rows":${page.rows},"truncated":${page.truncated},` +
            `"schemaChanged":${page.schemaChanged},"nextCursor":${JSON.stringify(page.nextCursor)},` +
            `"schemaId":${JSON.stringify(page.schemaId)}}`,
        );
  }
}

/**
 * `GET /v1/workspaces/:workspaceId/pipelines/:name/logs`: one page of a pipeline's inference
 * log, as JSON (default) or Arrow IPC, with the page's flags in `x-quoll-*` headers.
 */
export function logRoutes(app: FastifyInstance, ctx: ServerContext): void {
  app.get<{ Params: { workspaceId: string; name: string }; Querystring: LogsQueryString }>(
    '/v1/workspaces/:workspaceId/pipelines/:name/logs',
    {
      schema: {
        tags: ['inference logs'],
        summary: "One page of the pipeline's inference log",
        description:
          'Without start/end: the newest `limit` (default 100) rows, newest first. With start and end (both, inclusive; epoch ms or RFC 3339 with a zone): ' +
          'the rows in [start, end], oldest first, no row limit unless `limit` is given. A page holds rows of one schema and at most `maxBytes` ' +
          '(default 10 MB) of Arrow data. Answers `application/json` ({ records, rows, truncated, schemaChanged, nextCursor, schemaId }) or, with ' +
          'Accept `application/vnd.apache.arrow.stream` / `.file`, Arrow IPC; headers x-quoll-rows, x-quoll-truncated, x-quoll-schema-changed, ' +
          'x-quoll-next-cursor (absent on the last page) and x-quoll-schema-id carry the same flags. Pass nextCursor as `cursor` (with the same ' +
          'other parameters) for the next page. `columns` (e.g. time,out.*) narrows the answer to those columns. The page includes every inference answered before the query.',
        querystring: {
          type: 'object',
          properties: {
            start: {
              type: 'string',
              description: 'Earliest time (inclusive): epoch ms or RFC 3339. Give with end.',
            },
            end: {
              type: 'string',
              description: 'Latest time (inclusive): epoch ms or RFC 3339. Give with start.',
            },
            limit: {
              type: 'string',
              description: 'Most rows (positive integer). Default 100 without a range, unlimited with one.',
            },
            order: {
              type: 'string',
              enum: ['asc', 'desc', 'Asc', 'Desc'],
              description: 'Default desc without a range, asc with one.',
            },
            maxBytes: {
              type: 'string',
              description: 'Byte cap of the page (default 10000000, at most 67108864).',
            },
            cursor: { type: 'string', description: 'nextCursor of the previous page.' },
            columns: {
              type: 'string',
              description:
                "Only these columns: comma-separated names, or prefixes ending in * (e.g. time,out.*). Names this page's schema lacks are skipped. Default: every column.",
            },
          },
          additionalProperties: false,
        },
      },
    },
    async (req, reply) => {
      const answer = negotiate(req);
      const query = toLogQuery(req.query);
      const columns =
        req.query.columns === undefined || req.query.columns === ''
          ? null
          : parseLogColumns(req.query.columns);
      const pipeline = await ctx.pipelines.get(await workspaceIdOf(ctx, req), req.params.name);
      // Read-your-writes: rows of inferences already answered may still sit in the writer's
      // queue; wait for them so a query right after an inference sees it.
      if (ctx.inferenceLogs.state === 'open') await ctx.inferenceLogs.flush();
      const page = await ctx.inferenceLogs.query(pipeline.id, query);
      return send(reply, columns === null ? page : selectLogColumns(page, columns), answer);
    },
  );
}
