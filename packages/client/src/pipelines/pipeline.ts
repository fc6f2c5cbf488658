import { tableFromIPC, tableToIPC, type Table } from 'apache-arrow';
import {
  adoptTable,
  checkArrowModule,
  isArrowTableLike,
  isInstanceOfCopy,
  type ArrowModule,
  type ArrowTableLike,
  type ArrowTableOf,
} from '../arrow-interop/index.js';
import { NotDeployedError, ValidationError } from '../errors/index.js';
import { inspectCustom, renderFields } from '../format/index.js';
import type { HttpTransport } from '../http/index.js';
import type { ModelVersion } from '../models/index.js';
import type { ClientPlatform } from '../platform/index.js';
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
  LogsResultInfo,
  LogsTable,
  LogsTableOf,
} from './pipeline-logs.js';

/** Options of `deploy()`. */
export interface DeployOptions {
  /** Wait until the version is Running (or failed). @default true */
  waitForStatus?: boolean;
  /**
   * Deployment settings: `workers`, and the names of Wallaroo's `DeploymentConfigBuilder`
   * (`replicas`, `cpus`, `memory`), mapped onto this server; what it cannot honour is a
   * `ValidationError` (`invalid_deployment_config`). @default {} (the server's workers)
   */
  config?: DeploymentConfigDto;
}

/** Options of `infer()`. */
export interface InferOptions {
  /** Seconds to wait for the answer. @default 15 */
  timeout?: number;
  /**
   * Your own apache-arrow module (`import * as arrow from 'apache-arrow'`, version 15 or newer):
   * a Table result is then read with it and is a Table of your copy, so your code (and your
   * copy's `tableToIPC`) can use it. Also lets a Table of your copy be written with its own IPC
   * writer. @default the SDK's apache-arrow (export `arrow`)
   */
  arrow?: ArrowModule;
}

/** `infer()` with `{ arrow }`: the result is a Table of that module. */
export type InferWithArrowOptions<A extends ArrowModule> = InferOptions & { arrow: A };

/** One inference result row in records form. */
export type InferenceRecord = Record<string, unknown>;

/** A pipeline of model steps that can be deployed and serve inferences. */
export class Pipeline {
  /** @internal */
  constructor(
    protected readonly http: HttpTransport,
    protected dto: PipelineDto,
    protected readonly platform: ClientPlatform,
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
   * Persists the steps as a new version and deploys it; steps unchanged since the newest
   * version reuse it (and, when it already runs with the same config, nothing reloads). By
   * default waits until it is Running;
   * if a model fails to load, throws `NotDeployedError` with the reason. When a redeploy of a
   * running pipeline fails, the previous version keeps serving and this still throws.
   * @example await pipeline.deploy();
   * @example await pipeline.deploy({ config: { replicas: 1, cpus: 0.5, memory: '1Gi' } }); // the tutorials' config
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
   * records (`[{ tensor: [...] }]`) gives records out; Arrow IPC bytes (file or stream format)
   * give Arrow IPC file bytes out.
   *
   * Tables may come from any apache-arrow ≥ 15, not only the SDK's copy (your own dependency, of
   * another version or a second copy of the same one): they are carried over buffer by buffer.
   * The result Table is of the SDK's apache-arrow (exported as `arrow`) unless you pass your module
   * as `{ arrow }`, which makes it a Table of your copy.
   * @example
   *   const result = await pipeline.infer([{ tensor: [4, 2.5, 2900, ...] }]);
   *   import * as arrow from 'apache-arrow';
   *   const table = await pipeline.infer(myTable, { arrow }); // an arrow.Table of your copy
   */
  infer<A extends ArrowModule>(
    input: ArrowTableLike | Uint8Array | ArrayBuffer,
    options: InferWithArrowOptions<A>,
  ): Promise<ArrowTableOf<A>>;
  infer(input: Table | ArrowTableLike, options?: InferOptions): Promise<Table>;
  infer(input: Uint8Array | ArrayBuffer, options?: InferOptions): Promise<Uint8Array>;
  infer(input: InferenceRecord[], options?: InferOptions): Promise<InferenceRecord[]>;
  async infer(
    input: Table | ArrowTableLike | Uint8Array | ArrayBuffer | InferenceRecord[],
    options: InferOptions = {},
  ): Promise<unknown> {
    const arrow =
      options.arrow === undefined ? undefined : checkArrowModule(options.arrow, 'infer() option arrow');
    if (Array.isArray(input)) return this.inferJson(JSON.stringify(input), options);
    if (input instanceof Uint8Array || input instanceof ArrayBuffer) {
      const bytes = input instanceof Uint8Array ? input : new Uint8Array(input);
      const answer = await this.inferArrowBytes(bytes, ipcFormat(bytes), options);
      return arrow === undefined ? answer : arrow.tableFromIPC(answer);
    }
    if (isArrowTableLike(input)) {
      // A Table of the module given is written by its own writer; any other by the SDK's.
      const bytes =
        arrow !== undefined && isInstanceOfCopy(arrow.Table, input)
          ? arrow.tableToIPC(input as never, 'file')
          : tableToIPC(adoptTable(input), 'file');
      const answer = await this.inferArrowBytes(bytes, 'file', options);
      return arrow === undefined ? tableFromIPC(answer) : arrow.tableFromIPC(answer);
    }
    throw new ValidationError(
      'invalid_inference_input',
      'infer() takes an Arrow Table (of any apache-arrow ≥ 15), Arrow IPC bytes, or an array of records like [{ tensor: [...] }].',
      0,
    );
  }

  /**
   * Runs the pipeline on a file (Node): `.arrow` (Arrow IPC file) → Table (of your apache-arrow
   * with `{ arrow }`); `.json` (records) → records. In a browser, read the file yourself and call
   * `infer()`.
   */
  async inferFromFile(path: string, options: InferOptions = {}): Promise<Table | InferenceRecord[]> {
    const ext = /\.[^./\\]*$/.exec(path)?.[0].toLowerCase() ?? '';
    const use = { what: 'Input file', hint: 'give the path of an .arrow or .json file' };
    if (ext === '.arrow') {
      const arrow =
        options.arrow === undefined
          ? undefined
          : checkArrowModule(options.arrow, 'inferFromFile() option arrow');
      const bytes = await this.platform.readFile(path, use);
      const answer = await this.inferArrowBytes(bytes, ipcFormat(bytes), options);
      return (arrow === undefined ? tableFromIPC(answer) : arrow.tableFromIPC(answer)) as Table;
    }
    if (ext === '.json') {
      return this.inferJson(new TextDecoder().decode(await this.platform.readFile(path, use)), options);
    }
    throw new ValidationError(
      'invalid_inference_input',
      `File "${path}" is of type "${ext || '(none)'}", but only ".arrow" (Arrow IPC file) or ".json" (records) are accepted.`,
      0,
    );
  }

  /** Posts Arrow IPC bytes; answers the result as Arrow IPC file bytes. */
  private async inferArrowBytes(
    bytes: Uint8Array,
    format: 'file' | 'stream',
    options: InferOptions,
  ): Promise<Uint8Array> {
    const res = await this.http.send('POST', this.dto.inferencePath, {
      body: bytes,
      contentType: format === 'file' ? MEDIA_TYPES.arrowFile : MEDIA_TYPES.arrowStream,
      accept: MEDIA_TYPES.arrowFile,
      timeoutMs: timeoutMs(options),
    });
    return new Uint8Array(await res.arrayBuffer());
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
   * Records by default (`time` in epoch ms), an Arrow `Table` with `arrow: true` (of your own
   * apache-arrow with `arrow: yourArrowModule`). The result
   * has `truncated` (the 10 MB cap cut it), `schemaChanged` (rows of another schema were left
   * out) and `moreAvailable` (more rows than `limit`); each also prints a warning to stderr.
   * An empty window gives an empty result. Giving one of start/end is a `ValidationError`.
   *
   * @example
   * const recent = await pipeline.logs(); // newest 100, newest first
   * const window = await pipeline.logs({ start: new Date(Date.now() - 60_000), end: new Date(), arrow: true });
   * if (window.truncated) await pipeline.exportLogs({ start, end });
   */
  logs<A extends ArrowModule>(options: LogsOptions & { arrow: A }): Promise<LogsTableOf<A>>;
  logs(options: LogsOptions & { arrow: true }): Promise<LogsTable>;
  logs(options?: LogsOptions & { arrow?: false }): Promise<LogRecords>;
  logs(options?: LogsOptions): Promise<LogRecords | LogsTable | (object & LogsResultInfo)>;
  async logs(options: LogsOptions = {}): Promise<LogRecords | LogsTable | (object & LogsResultInfo)> {
    return fetchLogs(this.http, this.platform, this.path('/logs'), options);
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
    return exportLogs(this.http, this.platform, this.path('/logs'), this.name, options);
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

  [inspectCustom](): string {
    return this.toString();
  }
}

/** `file` when the bytes start with the Arrow IPC file magic (`ARROW1`), else `stream`. */
function ipcFormat(bytes: Uint8Array): 'file' | 'stream' {
  const magic = [0x41, 0x52, 0x52, 0x4f, 0x57, 0x31];
  return magic.every((b, i) => bytes[i] === b) ? 'file' : 'stream';
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
