import { STATUS_CODES } from 'node:http';
import { homedir, tmpdir } from 'node:os';
import { resolve } from 'node:path';
import type { Duplex } from 'node:stream';
import type { FastifyBaseLogger, FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { ERROR_CODES, type ErrorBody, type ErrorCode } from '@quoll/client/wire';
import { ApiError, safeDetails, safeMessage, StorageUnavailableError } from '../errors/index.js';

/** Builds the error body for a code. */
export function errorBody(code: ErrorCode, message: string, details?: Record<string, unknown>): ErrorBody {
  return { error: details === undefined ? { code, message } : { code, message, details } };
}

declare module 'fastify' {
  interface FastifyContextConfig {
    /** The content types a route takes, named when another is sent (415). @default JSON */
    accepts?: string[];
    /**
     * For routes whose body is streamed (uploads, where Fastify's `bodyLimit` does not apply):
     * a `Content-Length` above this is refused 413 before any byte is read.
     */
    maxBodyBytes?: number;
  }
}

/** One error of the schema validator (Ajv), as Fastify passes it on. */
interface SchemaIssue {
  keyword: string;
  instancePath: string;
  params: Record<string, unknown>;
  message?: string;
}

/** A JSON Schema node, as far as messages need it. */
interface SchemaNode {
  properties?: Record<string, SchemaNode>;
  items?: SchemaNode;
  required?: string[];
  enum?: unknown[];
  type?: string | string[];
}

/** The schema of the value at `instancePath` (`/config/workers`) inside a route schema part. */
function schemaAt(root: SchemaNode | undefined, instancePath: string): SchemaNode | undefined {
  let node = root;
  for (const segment of instancePath.split('/').filter(Boolean)) {
    if (node === undefined) return undefined;
    node =
      /^\d+$/.test(segment) && node.items !== undefined
        ? node.items
        : node.properties?.[decodeURIComponent(segment)];
  }
  return node;
}

const quoteList = (names: readonly unknown[]): string => names.map((n) => JSON.stringify(n)).join(', ');

/**
 * A validation failure in words that name the field and what it accepts, e.g.
 * `body/config has an unknown field "replicaCount"; accepted: "replicas", "workers", "cpus", "memory".`
 */
function validationError(
  fe: { validation?: unknown; validationContext?: string; message?: string },
  req?: FastifyRequest,
): ApiError {
  const issue = (Array.isArray(fe.validation) ? fe.validation[0] : undefined) as SchemaIssue | undefined;
  const context = fe.validationContext ?? 'request';
  if (issue === undefined) {
    return new ApiError(
      'invalid_request',
      `Invalid request: ${fe.message ?? 'does not match the API schema'}.`,
    );
  }
  const where = `${context}${issue.instancePath}`;
  const routeSchema = req?.routeOptions.schema as Record<string, SchemaNode | undefined> | undefined;
  const node = schemaAt(routeSchema?.[context], issue.instancePath);
  const accepted = Object.keys(node?.properties ?? {});
  const p = issue.params;
  switch (issue.keyword) {
    case 'additionalProperties': {
      const field = String(p.additionalProperty);
      const noun = context === 'querystring' ? 'parameter' : 'field';
      return new ApiError(
        'invalid_request',
        `${where} has an unknown ${noun} ${JSON.stringify(field)}; accepted: ${accepted.length > 0 ? quoteList(accepted) : 'none'}.`,
        { field: `${where}/${field}`, accepted },
      );
    }
    case 'required': {
      const field = String(p.missingProperty);
      return new ApiError(
        'invalid_request',
        `${where} is missing the required field ${JSON.stringify(field)}.`,
        {
          field: `${where}/${field}`,
          required: node?.required ?? [field],
        },
      );
    }
    case 'enum': {
      const allowed = Array.isArray(p.allowedValues) ? p.allowedValues : (node?.enum ?? []);
      return new ApiError('invalid_request', `${where} must be one of ${quoteList(allowed)}.`, {
        field: where,
        accepted: allowed,
      });
    }
    case 'type':
      return new ApiError('invalid_request', `${where} must be ${String(p.type).replace(/,/g, ' or ')}.`, {
        field: where,
      });
    default:
      return new ApiError('invalid_request', `${where} ${issue.message ?? 'is not valid'}.`, {
        field: where,
      });
  }
}

/** `unsupported_media_type` naming the Content-Type sent and the ones the route takes (its `config.accepts`). */
export function unsupportedMediaType(req?: FastifyRequest): ApiError {
  const accepts = req?.routeOptions.config.accepts ?? ['application/json'];
  const sent = req?.headers['content-type']?.split(';')[0]?.trim() || 'none';
  return new ApiError(
    'unsupported_media_type',
    `Content-Type ${JSON.stringify(sent)} is not accepted here; send one of: ${accepts.join(', ')}.`,
    { contentType: sent, accepted: accepts },
  );
}

/** System and driver codes of a full disk or quota (Node's fs, SQLite, PostgreSQL's disk_full). */
const STORAGE_FULL_CODES = new Set(['ENOSPC', 'EDQUOT', 'SQLITE_FULL', '53100']);

/** Maps a thrown value to a catalogue error; unknown errors become `internal_error`. */
export function toApiError(err: unknown, req?: FastifyRequest): ApiError {
  if (err instanceof ApiError) return err;
  if (err instanceof StorageUnavailableError) {
    return new ApiError(
      'database_unavailable',
      'The database cannot be reached right now; the server keeps reconnecting (its log says why). Retry shortly; GET /v1/health shows the database state.',
    );
  }
  const fe = err as Partial<FastifyError> & { validation?: unknown; validationContext?: string };
  if (fe && typeof fe === 'object' && STORAGE_FULL_CODES.has(String(fe.code ?? ''))) {
    return new ApiError(
      'storage_full',
      "The server's disk (or its quota) is full, so nothing was written; free space on the server and retry.",
    );
  }
  if (fe && typeof fe === 'object') {
    if (fe.validation !== undefined || fe.code === 'FST_ERR_VALIDATION') return validationError(fe, req);
    switch (fe.code ?? '') {
      case 'FST_ERR_CTP_BODY_TOO_LARGE':
        return new ApiError(
          'payload_too_large',
          'The request body is over the size cap for this route; send less data per request.',
        );
      case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
        return unsupportedMediaType(req);
      case 'FST_ERR_BAD_URL':
        return new ApiError(
          'invalid_request',
          'The URL path is not valid percent-encoding (a "%" not followed by two hex digits, or bytes that are not UTF-8); encode each name with encodeURIComponent.',
        );
      case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
        return new ApiError('invalid_request', fe.message ?? 'Invalid body.');
      default:
        break;
    }
    if (fe.statusCode === 400 && typeof fe.message === 'string') {
      return new ApiError('invalid_request', `Invalid request body: ${fe.message}.`);
    }
  }
  return new ApiError('internal_error', 'Internal server error; the server log has the details.');
}

/** The server's folders that error messages never show (its home, temporary and working folders). */
export function privatePaths(home: string): string[] {
  return [home, resolve(home), tmpdir(), homedir(), process.cwd()];
}

/**
 * What becomes of a request body still unread when an error is answered (413 on a declared
 * length, 503 `server_busy`, 507 `storage_full` in the middle of an upload). A body past its cap
 * is never read further, and one whose stream was destroyed (a failed upload's pipeline
 * destroys it) cannot be: its unread rest would stay in the connection, and a client reusing
 * the connection for its next request (fetch keeps connections alive) would wait forever for an
 * answer, so the answer says `Connection: close` and the server closes it. Any other unread
 * rest is read and dropped (as Node does for a body never touched), so the client can finish
 * sending, read the answer, and keep its connection.
 */
export function settleUnreadBody(req: FastifyRequest, reply: FastifyReply, code: ErrorCode): void {
  const raw = req.raw;
  if (raw.complete) return;
  if (code === 'payload_too_large' || raw.destroyed) void reply.header('connection', 'close');
  else raw.resume();
}

/**
 * The answer to a request Node's HTTP parser refused before any route saw it (Fastify's
 * `clientErrorHandler`): headers over the size limit (431 `header_too_large`), headers not in
 * within the headers deadline (408 `request_timeout`), anything else that is not HTTP/1.1 (400
 * `invalid_request`), with the catalogue's body instead of Fastify's own. The connection is
 * closed after it, as Node does; a connection already reset gets nothing.
 */
export function answerClientError(err: Error & { code?: string }, socket: Duplex): void {
  if (err.code === 'ECONNRESET' || socket.destroyed) return;
  let code: ErrorCode;
  let message: string;
  if (err.code === 'HPE_HEADER_OVERFLOW') {
    code = 'header_too_large';
    message =
      "The request's headers are over the server's 16 KiB limit; send a shorter token, fewer cookies or fewer headers.";
  } else if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT') {
    code = 'request_timeout';
    message = "The request's headers did not arrive in full within the server's deadline; send them at once.";
  } else {
    code = 'invalid_request';
    // The parser's reason, e.g. "Invalid header value char"; never the bytes it choked on.
    const reason = typeof err.code === 'string' && err.code.startsWith('HPE_') ? ` (${err.code})` : '';
    message = `The request is not valid HTTP/1.1${reason}; check the request line, headers and Content-Length or chunked framing.`;
  }
  const status = ERROR_CODES[code].status;
  const body = JSON.stringify(errorBody(code, message));
  if (socket.writable) {
    socket.write(
      `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\nContent-Length: ${Buffer.byteLength(body)}\r\nContent-Type: application/json; charset=utf-8\r\nConnection: close\r\n\r\n${body}`,
    );
  }
  socket.destroy(err);
}

/**
 * The 5xx refusals the server answers by design, not because something broke: the level their
 * one log line has (no error object, so no stack). A full body budget, a pipeline still
 * loading, a replica elsewhere or a server stopping are the normal course of things (info);
 * a database, log store or disk that cannot take writes is an operational problem an operator
 * should see (warn). Every other 5xx (`internal_error`, `inference_failed`, …) stays an error
 * with its stack.
 */
export const EXPECTED_REFUSALS: Readonly<Partial<Record<ErrorCode, 'info' | 'warn'>>> = {
  server_busy: 'info',
  pipeline_not_ready: 'info',
  replica_unavailable: 'info',
  shutting_down: 'info',
  timeout: 'warn',
  log_store_unavailable: 'warn',
  database_unavailable: 'warn',
  storage_full: 'warn',
};

/**
 * Logs an error answered with `apiError`'s status: an expected refusal (see
 * {@link EXPECTED_REFUSALS}) as one line at its level with its code and message, any other
 * 5xx at error level with the original error (and its stack), a 4xx at debug level.
 */
export function logAnsweredError(log: FastifyBaseLogger, apiError: ApiError, err: unknown): void {
  const status = ERROR_CODES[apiError.code].status;
  if (status < 500) {
    log.debug({ code: apiError.code }, apiError.message);
    return;
  }
  const level = EXPECTED_REFUSALS[apiError.code];
  if (level === undefined) log.error({ err }, 'request failed');
  else log[level]({ code: apiError.code, status }, `request refused: ${safeMessage(apiError.message)}`);
}

/** A Fastify error handler that answers synchronously (the answer is sent when it returns). */
export type SyncErrorHandler = (err: unknown, req: FastifyRequest, reply: FastifyReply) => void;

/**
 * The API's error handler: answers `{ error: { code, message, details? } }` with the catalogue
 * status, messages and details cleaned of `paths` (see {@link installErrorHandlers}).
 */
export function apiErrorHandler(paths: readonly string[] = []): SyncErrorHandler {
  return (err, req, reply) => {
    const apiError = toApiError(err, req);
    const status = ERROR_CODES[apiError.code].status;
    logAnsweredError(req.log, apiError, err);
    settleUnreadBody(req, reply, apiError.code);
    void reply
      .status(status)
      .send(
        errorBody(apiError.code, safeMessage(apiError.message, paths), safeDetails(apiError.details, paths)),
      );
  };
}

/**
 * Installs the error and not-found handlers that answer `{ error: { code, message } }`.
 * Messages and details are cleaned on the way out ({@link safeMessage}): `paths` (the server's
 * home and working folders) and other absolute paths become `<path>`, stack frames go, and a
 * message is at most 1 KiB with the offending value elided.
 */
export function installErrorHandlers(app: FastifyInstance, paths: readonly string[] = []): void {
  app.setErrorHandler(apiErrorHandler(paths));
  app.setNotFoundHandler((req, reply) => {
    settleUnreadBody(req, reply, 'route_not_found');
    void reply
      .status(404)
      .send(
        errorBody(
          'route_not_found',
          safeMessage(
            `No route ${req.method} ${req.url.split('?')[0] ?? ''}; the OpenAPI document at /v1/openapi.json lists the API.`,
          ),
        ),
      );
  });
}
