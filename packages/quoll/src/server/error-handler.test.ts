import Fastify from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ERROR_CODES, type ErrorBody, type ErrorCode } from '@quoll/client/wire';
import { ApiError, MAX_MESSAGE_CHARS } from '../errors/index.js';
import { installErrorHandlers } from './error-handler.js';

const HOME = '/srv/quoll-home-7f3a';
const app = Fastify();
/** A 2 MB offending value, as a hostile input might carry. */
const huge = 'x'.repeat(2 * 1024 * 1024);

beforeAll(async () => {
  installErrorHandlers(app, [HOME]);
  app.get<{ Params: { code: ErrorCode } }>('/boom/:code', async (req) => {
    throw new ApiError(
      req.params.code,
      `Cannot read ${HOME}/models/ab.onnx or /usr/lib/node_modules/onnxruntime-node/bin/x.node: "${huge}"\n    at readModel (file:///opt/quoll/dist/models/model-service.js:12:7)\n    at process.processTicksAndRejections (node:internal/process/task_queues:95:5)`,
      { path: `${HOME}/models/ab.onnx`, value: huge },
    );
  });
  app.get('/disk-full', async () => {
    throw Object.assign(new Error(`ENOSPC: no space left on device, write '${HOME}/blobs/tmp-1'`), {
      code: 'ENOSPC',
      errno: -28,
    });
  });
  app.get('/quota', async () => {
    throw Object.assign(new Error('EDQUOT: disk quota exceeded'), { code: 'EDQUOT' });
  });
  await app.ready();
});

afterAll(() => app.close());

describe('error messages clients see', () => {
  it('for every catalogue code: no absolute path, no stack frame, at most 1 KiB, the value elided', async () => {
    for (const code of Object.keys(ERROR_CODES) as ErrorCode[]) {
      const res = await app.inject({ method: 'GET', url: `/boom/${code}` });
      expect(res.statusCode, code).toBe(ERROR_CODES[code].status);
      const { error } = res.json<ErrorBody>();
      expect(error.code).toBe(code);
      expect(error.message.length, code).toBeLessThanOrEqual(MAX_MESSAGE_CHARS);
      expect(error.message, code).toContain('elided');
      expect(error.message, code).not.toContain(HOME);
      expect(error.message, code).not.toMatch(/\/usr\/lib|\/opt\/quoll|node:internal|\n\s*at /);
      expect(error.message, code).toContain('Cannot read <path>');
      expect(JSON.stringify(error.details ?? {}).length, code).toBeLessThanOrEqual(4096);
      expect(JSON.stringify(error.details ?? {}), code).not.toContain(HOME);
    }
  });

  it('a full disk or quota is storage_full (507), never internal_error, and names no path', async () => {
    for (const url of ['/disk-full', '/quota']) {
      const res = await app.inject({ method: 'GET', url });
      expect(res.statusCode).toBe(507);
      const { error } = res.json<ErrorBody>();
      expect(error.code).toBe('storage_full');
      expect(error.message).not.toContain(HOME);
    }
  });

  it('keeps API routes named in messages (only file paths are hidden)', async () => {
    const res = await app.inject({ method: 'GET', url: '/v1/nowhere/at/all' });
    expect(res.json<ErrorBody>().error.message).toContain('/v1/nowhere/at/all');
  });
});

describe('how answered errors are logged', () => {
  /** A Fastify app whose JSON log lines are collected, with routes that throw `errors`. */
  async function logged(errors: Record<string, () => unknown>): Promise<Record<string, unknown>[]> {
    const lines: Record<string, unknown>[] = [];
    const logApp = Fastify({
      logger: {
        level: 'debug',
        stream: { write: (line: string) => lines.push(JSON.parse(line) as Record<string, unknown>) },
      },
      disableRequestLogging: true,
    });
    installErrorHandlers(logApp, [HOME]);
    for (const [path, fail] of Object.entries(errors))
      logApp.get(`/${path}`, async () => {
        throw fail();
      });
    await logApp.ready();
    for (const path of Object.keys(errors)) await logApp.inject({ method: 'GET', url: `/${path}` });
    await logApp.close();
    return lines;
  }

  it('an expected 503 or 507 is one info or warn line without a stack; a real 5xx is an error with its stack', async () => {
    const lines = await logged({
      busy: () => new ApiError('server_busy', 'The server holds as many bodies as its budget allows.'),
      loading: () => new ApiError('pipeline_not_ready', 'Pipeline "p" is Deploying, not Running.'),
      replica: () => new ApiError('replica_unavailable', 'No node can take it now.'),
      stopping: () => new ApiError('shutting_down', 'The server is stopping.'),
      database: () => new ApiError('database_unavailable', 'The database cannot be reached.'),
      logs: () => new ApiError('log_store_unavailable', 'The log cannot be written.'),
      disk: () => Object.assign(new Error('ENOSPC: no space left on device'), { code: 'ENOSPC' }),
      bug: () => new TypeError('x is undefined'),
      model: () => new ApiError('inference_failed', 'Inference failed: bad shape'),
    });
    const byCode = new Map<string, Record<string, unknown>>();
    for (const line of lines) if (typeof line.code === 'string') byCode.set(line.code, line);
    const INFO = 30;
    const WARN = 40;
    const ERROR = 50;
    for (const [code, level] of [
      ['server_busy', INFO],
      ['pipeline_not_ready', INFO],
      ['replica_unavailable', INFO],
      ['shutting_down', INFO],
      ['database_unavailable', WARN],
      ['log_store_unavailable', WARN],
      ['storage_full', WARN],
    ] as const) {
      const line = byCode.get(code);
      expect(line, code).toBeDefined();
      expect(line!.level, code).toBe(level);
      expect(line!.err, code).toBeUndefined();
      expect(JSON.stringify(line), code).not.toMatch(/\n\s*at /);
    }
    const errors = lines.filter((line) => line.level === ERROR);
    expect(errors).toHaveLength(2);
    for (const line of errors) expect((line.err as { stack?: string }).stack).toMatch(/\n\s*at /);
    expect(errors.map((line) => (line.err as { message: string }).message)).toEqual([
      'x is undefined',
      'Inference failed: bad shape',
    ]);
  });
});
