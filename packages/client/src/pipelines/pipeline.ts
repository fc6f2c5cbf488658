import { readFile } from 'node:fs/promises';
import { extname } from 'node:path';
import { inspect } from 'node:util';
import { Table, tableFromIPC, tableToIPC } from 'apache-arrow';
import { NotDeployedError, ValidationError } from '../errors/index.js';
import { renderFields } from '../format/index.js';
import type { HttpTransport } from '../http/index.js';
import type { ModelVersion } from '../models/index.js';
import {
  MEDIA_TYPES,
  type DeploymentConfigDto,
  type PipelineDto,
  type PipelineStatusDto,
  type PipelineStepDto,
  type PipelineVersionDto,
} from '../wire/index.js';
import { exportLogs, fetchLogs } from './pipeline-logs.js';
import type {
  ExportLogsOptions,
  ExportLogsSummary,
  LogRecords,
  LogsOptions,
  LogsTable,
} from './pipeline-logs.js';

/** Options of `deploy()`. */
export interface DeployOptions {
  /** Wait until the version is Running (or failed). @default true */
  waitForStatus?: boolean;
  /** Deployment settings. @default {} (2 workers) */
  config?: DeploymentConfigDto;
}

/** Options of `infer()`. */
export interface InferOptions {
  /** Seconds to wait for the answer. @default 15 */
  timeout?: number;
}

/** One inference result row in records form. */
export type InferenceRecord = Record<string, unknown>;

/** A pipeline of model steps that can be deployed and serve inferences. */
export class Pipeline {
  /** @internal */
  constructor(
    protected readonly http: HttpTransport,
    protected dto: PipelineDto,
  ) {}

  get name(): string {
    return this.dto.name;
  }
  get id(): number {
    return this.dto.id;
  }
  get workspaceId(): number {
    return this.dto.workspaceId;
  }
  get createdAt(): string {
    return this.dto.createdAt;
  }

  /** @internal */
  protected path(suffix = ''): string {
    return `/v1/workspaces/${this.workspaceId}/pipelines/${encodeURIComponent(this.name)}${suffix}`;
  }

  private async putSteps(steps: PipelineStepDto[]): Promise<this> {
    this.dto = await this.http.json<PipelineDto>('PUT', this.path('/steps'), {
      json: { steps: steps.map((s) => ({ modelName: s.model.name, modelVersion: s.model.version })) },
    });
    return this;
  }

  private async current(): Promise<PipelineStepDto[]> {
    this.dto = await this.http.json<PipelineDto>('GET', this.path());
    return this.dto.steps;
  }

  /** Appends a step that runs `model`. Steps are persisted as a version at `deploy()`. */
  async addModelStep(model: ModelVersion): Promise<this> {
    return this.putSteps([...(await this.current()), stepOf(model)]);
  }

  /** Replaces step `index` (0-based) with one that runs `model`. */
  async replaceWithModelStep(index: number, model: ModelVersion): Promise<this> {
    const steps = await this.current();
    checkIndex(index, steps.length);
    steps[index] = stepOf(model);
    return this.putSteps(steps);
  }

  /** Removes step `index` (0-based). */
  async removeStep(index: number): Promise<this> {
    const steps = await this.current();
    checkIndex(index, steps.length);
    steps.splice(index, 1);
    return this.putSteps(steps);
  }

  /** Removes every step. */
  async clear(): Promise<this> {
    return this.putSteps([]);
  }

  /** The current steps. */
  async steps(): Promise<PipelineStepDto[]> {
    return this.current();
  }

  /** Deployed versions, newest first. */
  async versions(): Promise<PipelineVersionDto[]> {
    return this.http.json<PipelineVersionDto[]>('GET', this.path('/versions'));
  }

  /**
   * Persists the steps as a new version and deploys it. By default waits until it is Running;
   * if a model fails to load, throws `NotDeployedError` with the reason. When a redeploy of a
   * running pipeline fails, the previous version keeps serving and this still throws.
   * @example await pipeline.deploy();
   */
  async deploy(options: DeployOptions = {}): Promise<this> {
    const wait = options.waitForStatus ?? true;
    const status = await this.http.json<PipelineStatusDto>('POST', this.path('/deploy'), {
      json: { wait, config: options.config ?? {} },
      timeoutMs: 600_000,
    });
    this.dto = await this.http.json<PipelineDto>('GET', this.path());
    // The version just created is the newest; a failed redeploy leaves an older one serving.
    if (wait && (status.status !== 'Running' || status.version !== this.dto.versions[0])) {
      throw new NotDeployedError(
        'pipeline_not_ready',
        `Deployment of pipeline "${this.name}" failed: ${status.details.join('; ')}`,
        503,
        {
          status,
        },
      );
    }
    return this;
  }

  /** Stops serving. A no-op when not deployed. */
  async undeploy(): Promise<this> {
    await this.http.json<PipelineStatusDto>('POST', this.path('/undeploy'));
    this.dto = await this.http.json<PipelineDto>('GET', this.path());
    return this;
  }

  /** Deployment status; `status === 'Running'` exactly when inference will succeed. */
  async status(): Promise<PipelineStatusDto> {
    return this.http.json<PipelineStatusDto>('GET', this.path('/status'));
  }

  /** The HTTP inference endpoint of this pipeline. */
  url(): string {
    return this.http.url(this.dto.inferencePath);
  }

  /**
   * Runs the deployed pipeline. An Arrow `Table` in gives an Arrow `Table` out; an array of
   * records (`[{ tensor: [...] }]`) gives records out.
   * @example const result = await pipeline.infer([{ tensor: [4, 2.5, 2900, ...] }]);
   */
  infer(input: Table, options?: InferOptions): Promise<Table>;
  infer(input: InferenceRecord[], options?: InferOptions): Promise<InferenceRecord[]>;
  async infer(
    input: Table | InferenceRecord[],
    options: InferOptions = {},
  ): Promise<Table | InferenceRecord[]> {
    if (isArrowTable(input)) return this.inferArrowBytes(tableToIPC(input, 'file'), options);
    if (!Array.isArray(input)) {
      throw new ValidationError(
        'invalid_inference_input',
        'infer() takes an Arrow Table or an array of records like [{ tensor: [...] }].',
        0,
      );
    }
    return this.inferJson(JSON.stringify(input), options);
  }

  /** Runs the pipeline on a file: `.arrow` (Arrow IPC file) → Table; `.json` (records) → records. */
  async inferFromFile(path: string, options: InferOptions = {}): Promise<Table | InferenceRecord[]> {
    const ext = extname(path).toLowerCase();
    if (ext === '.arrow') return this.inferArrowBytes(await readFile(path), options);
    if (ext === '.json') return this.inferJson(await readFile(path, 'utf8'), options);
    throw new ValidationError(
      'invalid_inference_input',
      `File "${path}" is of type "${ext || '(none)'}", but only ".arrow" (Arrow IPC file) or ".json" (records) are accepted.`,
      0,
    );
  }

  private async inferArrowBytes(bytes: Uint8Array, options: InferOptions): Promise<Table> {
    const res = await this.http.send('POST', this.dto.inferencePath, {
      body: bytes,
      contentType: MEDIA_TYPES.arrowFile,
      accept: MEDIA_TYPES.arrowFile,
      timeoutMs: timeoutMs(options),
    });
    return tableFromIPC(new Uint8Array(await res.arrayBuffer()));
  }

  private async inferJson(body: string, options: InferOptions): Promise<InferenceRecord[]> {
    const res = await this.http.send('POST', this.dto.inferencePath, {
      body,
      contentType: MEDIA_TYPES.json,
      accept: MEDIA_TYPES.json,
      timeoutMs: timeoutMs(options),
    });
    return (await res.json()) as InferenceRecord[];
  }

  /**
   * Reads the pipeline's inference log. Without a range: the newest `limit` (default 100) rows,
   * newest first. With `start` and `end` (both, inclusive): the rows in that window, oldest first.
   * Records by default (`time` in epoch ms), an Arrow `Table` with `arrow: true`. The result
   * has `truncated` (the 10 MB cap cut it), `schemaChanged` (rows of another schema were left
   * out) and `moreAvailable` (more rows than `limit`); each also prints a warning to stderr.
   * An empty window gives an empty result. Giving one of start/end is a `ValidationError`.
   *
   * @example
   * const recent = await pipeline.logs(); // newest 100, newest first
   * const window = await pipeline.logs({ start: new Date(Date.now() - 60_000), end: new Date(), arrow: true });
   * if (window.truncated) await pipeline.exportLogs({ start, end });
   */
  logs(options: LogsOptions & { arrow: true }): Promise<LogsTable>;
  logs(options?: LogsOptions & { arrow?: false }): Promise<LogRecords>;
  logs(options?: LogsOptions): Promise<LogRecords | LogsTable>;
  async logs(options: LogsOptions = {}): Promise<LogRecords | LogsTable> {
    return fetchLogs(this.http, this.path('/logs'), options);
  }

  /**
   * Writes the pipeline's inference log to files: `<directory>/<filePrefix>-1.json` (JSON Lines,
   * `time` in epoch ms) or `-1.arrow` (Arrow IPC file), and a new numbered file whenever the
   * schema changes. Stops at `dataSizeLimit` (default `'100 MiB'`) with a warning. Without a
   * range it exports the newest `limit` (default 100) rows, newest first.
   *
   * @example
   * await pipeline.exportLogs({ directory: 'logs', start, end, dataSizeLimit: '10 MiB' });
   */
  async exportLogs(options: ExportLogsOptions = {}): Promise<ExportLogsSummary> {
    return exportLogs(this.http, this.path('/logs'), this.name, options);
  }

  toJSON(): PipelineDto {
    return { ...this.dto };
  }

  toString(): string {
    return renderFields([
      ['name', this.name],
      ['created', this.dto.createdAt],
      ['last_updated', this.dto.updatedAt],
      ['deployed', this.dto.deployed],
      ['versions', this.dto.versions.join(', ') || null],
      ['steps', this.dto.steps.map((s) => s.model.name).join(', ') || null],
    ]);
  }

  [inspect.custom](): string {
    return this.toString();
  }
}

/** A Table from this or another copy of apache-arrow (instanceof fails across copies). */
function isArrowTable(input: unknown): input is Table {
  return (
    input instanceof Table ||
    (typeof input === 'object' &&
      input !== null &&
      !Array.isArray(input) &&
      'schema' in input &&
      'batches' in input &&
      'numRows' in input)
  );
}

function stepOf(model: ModelVersion): PipelineStepDto {
  return { model: { name: model.name, version: model.version, sha: model.sha } };
}

function checkIndex(index: number, length: number): void {
  if (!Number.isInteger(index) || index < 0 || index >= length) {
    throw new ValidationError(
      'invalid_step',
      `Step index ${index} is out of range: the pipeline has ${length} step(s) (0-based).`,
      0,
    );
  }
}

function timeoutMs(options: InferOptions): number {
  const t = options.timeout ?? 15;
  if (typeof t !== 'number' || !(t > 0)) {
    throw new ValidationError(
      'invalid_request',
      `timeout is ${typeof t} ${String(t)} but a positive number of seconds is required.`,
      0,
    );
  }
  return t * 1000;
}
