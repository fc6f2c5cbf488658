import type { FastifyError, FastifyInstance } from 'fastify';
import { ERROR_CODES, type ErrorBody, type ErrorCode } from '@quoll/client/wire';
import { ApiError } from './api-error.js';

/** Builds the error body for a code. */
export function errorBody(code: ErrorCode, message: string, details?: Record<string, unknown>): ErrorBody {
  return { error: details === undefined ? { code, message } : { code, message, details } };
}

/** Maps a thrown value to a catalogue error; unknown errors become `internal_error`. */
export function toApiError(err: unknown): ApiError {
  if (err instanceof ApiError) return err;
  const fe = err as Partial<FastifyError> & { validation?: unknown };
  if (fe && typeof fe === 'object') {
    if (fe.validation !== undefined || fe.code === 'FST_ERR_VALIDATION') {
      return new ApiError(
        'invalid_request',
        `Invalid request: ${fe.message ?? 'does not match the API schema'}.`,
      );
    }
    switch (fe.code ?? '') {
      case 'FST_ERR_CTP_BODY_TOO_LARGE':
        return new ApiError(
          'payload_too_large',
          'The request body is over the size cap for this route; send less data per request.',
        );
      case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
        return new ApiError(
          'unsupported_media_type',
          `${fe.message ?? 'Unsupported Content-Type'}; see the OpenAPI document for accepted types.`,
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

/** Installs the error and not-found handlers that answer `{ error: { code, message } }`. */
export function installErrorHandlers(app: FastifyInstance): void {
  app.setErrorHandler((err, req, reply) => {
    const apiError = toApiError(err);
    const status = ERROR_CODES[apiError.code].status;
    if (status >= 500) req.log.error({ err }, 'request failed');
    else req.log.debug({ code: apiError.code }, apiError.message);
    void reply.status(status).send(errorBody(apiError.code, apiError.message, apiError.details));
  });
  app.setNotFoundHandler((req, reply) => {
    void reply
      .status(404)
      .send(
        errorBody(
          'route_not_found',
          `No route ${req.method} ${req.url.split('?')[0] ?? ''}; the OpenAPI document at /v1/openapi.json lists the API.`,
        ),
      );
  });
}
