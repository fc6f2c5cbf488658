import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { basename } from 'node:path';
import { Readable } from 'node:stream';
import { Connection, ConnectionList } from './connections/index.js';
import { ValidationError } from './errors/index.js';
import { HttpTransport, resolveClientOptions, type ClientOptions } from './http/index.js';
import { ModelVersion } from './models/index.js';
import { Orchestration, OrchestrationList } from './orchestrations/index.js';
import { Pipeline } from './pipelines/index.js';
import { inTask, taskArgs } from './task-env/index.js';
import { Task, TaskList } from './tasks/index.js';
import type {
  ConnectionAuditEntryDto,
  ConnectionDto,
  ModelVersionDto,
  OrchestrationDto,
  PipelineDto,
  TaskDto,
  WhoAmIDto,
  WorkspaceDto,
} from './wire/index.js';
import { Workspace } from './workspaces/index.js';

/** Options of `uploadModel()`. */
export interface UploadModelOptions {
  /** Only ONNX is supported. @default 'onnx' */
  framework?: 'onnx';
  /** File name recorded when uploading bytes. @default `<name>.onnx` */
  fileName?: string;
  /**
   * Input column names, one per model input, set with the upload (checked before anything is
   * stored, unlike a later `configure()`). @default null (map by name)
   */
  tensorFields?: string[];
  /** `'single'` runs one row at a time. @default null */
  batchConfig?: 'single';
}

/**
 * The entry point of the SDK.
 * @example
 *   import { Client } from '@quoll/client';
 *   const client = new Client(); // reads ./.quoll/credentials.json, or QUOLL_URL + QUOLL_TOKEN
 *   const ws = await client.getWorkspace('orchestrationworkspace', { createIfNotExist: true });
 *   client.setCurrentWorkspace(ws);
 */
export class Client {
  /** @internal */
  readonly http: HttpTransport;
  private current: Workspace | null = null;

  constructor(options: ClientOptions = {}) {
    const { url, token } = resolveClientOptions(options);
    this.http = new HttpTransport(url, token);
  }

  /** Base URL of the server. */
  get url(): string {
    return this.http.baseUrl;
  }

  // -- workspaces

  /** Creates a workspace; a taken name is a `ConflictError`. */
  async createWorkspace(name: string): Promise<Workspace> {
    return new Workspace(
      this.http,
      await this.http.json<WorkspaceDto>('POST', '/v1/workspaces', { json: { name } }),
    );
  }

  /** Every workspace this token can see. */
  async listWorkspaces(): Promise<Workspace[]> {
    return (await this.http.json<WorkspaceDto[]>('GET', '/v1/workspaces')).map(
      (w) => new Workspace(this.http, w),
    );
  }

  /** A workspace by name; `NotFoundError` unless `createIfNotExist`. */
  async getWorkspace(name: string, options: { createIfNotExist?: boolean } = {}): Promise<Workspace> {
    const dto = await this.http.json<WorkspaceDto>(
      'GET',
      `/v1/workspaces/by-name/${encodeURIComponent(name)}`,
      {
        query: { createIfNotExist: options.createIfNotExist ? true : undefined },
      },
    );
    return new Workspace(this.http, dto);
  }

  /** Makes `workspace` the default for model, pipeline and orchestration calls. Returns it. */
  setCurrentWorkspace(workspace: Workspace): Workspace {
    this.current = workspace;
    return workspace;
  }

  /** The current workspace: the one set, else the token's default workspace. */
  async getCurrentWorkspace(): Promise<Workspace> {
    if (this.current) return this.current;
    const me = await this.http.json<WhoAmIDto>('GET', '/v1/me');
    this.current = new Workspace(this.http, me.workspace);
    return this.current;
  }

  /** Who the token is. */
  async whoAmI(): Promise<WhoAmIDto> {
    return this.http.json<WhoAmIDto>('GET', '/v1/me');
  }

  /**
   * Issues a token that sees only `workspace` (admin tokens only); tasks get such tokens.
   * @param ttlSeconds how long it lives. @default forever
   */
  async createWorkspaceToken(
    workspace: Workspace,
    options: { subject?: string; ttlSeconds?: number } = {},
  ): Promise<string> {
    const issued = await this.http.json<{ id: string; token: string }>(
      'POST',
      `/v1/workspaces/${workspace.id}/tokens`,
      {
        json: options,
      },
    );
    return issued.token;
  }

  /** @internal */
  async workspaceId(): Promise<number> {
    return (await this.getCurrentWorkspace()).id;
  }

  // -- models

  /**
   * Uploads an ONNX model into the current workspace from a path or bytes; the same name
   * again makes a new version.
   * @example const model = await client.uploadModel('orchestrationmodel', './models/rf_model.onnx');
   */
  async uploadModel(
    name: string,
    pathOrBytes: string | Uint8Array,
    options: UploadModelOptions = {},
  ): Promise<ModelVersion> {
    if (options.framework !== undefined && options.framework !== 'onnx') {
      throw new ValidationError(
        'invalid_request',
        `Framework "${String(options.framework)}" is not supported; only "onnx" is.`,
        0,
      );
    }
    const ws = await this.workspaceId();
    let body: Uint8Array | ReadableStream<Uint8Array>;
    let fileName: string;
    if (typeof pathOrBytes === 'string') {
      const isFile = await stat(pathOrBytes).then(
        (s) => s.isFile(),
        () => false,
      );
      if (!isFile) {
        throw new ValidationError(
          'invalid_request',
          `Model file "${pathOrBytes}" does not exist or is not a file; give the path of an .onnx file.`,
          0,
        );
      }
      body = Readable.toWeb(createReadStream(pathOrBytes)) as ReadableStream<Uint8Array>;
      fileName = options.fileName ?? basename(pathOrBytes);
    } else {
      body = pathOrBytes;
      fileName = options.fileName ?? `${name}.onnx`;
    }
    const dto = await this.http.json<ModelVersionDto>('POST', `/v1/workspaces/${ws}/models`, {
      body,
      contentType: 'application/octet-stream',
      query: {
        name,
        fileName,
        tensorFields: options.tensorFields?.join(','),
        batchConfig: options.batchConfig,
      },
      timeoutMs: 600_000,
    });
    return new ModelVersion(this.http, dto);
  }

  /** The newest version of a model, or the given version. */
  async getModel(name: string, version?: string): Promise<ModelVersion> {
    const ws = await this.workspaceId();
    const dto = await this.http.json<ModelVersionDto>(
      'GET',
      `/v1/workspaces/${ws}/models/${encodeURIComponent(name)}`,
      {
        query: { version },
      },
    );
    return new ModelVersion(this.http, dto);
  }

  /** Every model version in the current workspace, newest first. */
  async listModels(): Promise<ModelVersion[]> {
    const ws = await this.workspaceId();
    return (await this.http.json<ModelVersionDto[]>('GET', `/v1/workspaces/${ws}/models`)).map(
      (m) => new ModelVersion(this.http, m),
    );
  }

  // -- pipelines

  /** Creates a pipeline, or returns the existing one of that name. */
  async buildPipeline(name: string): Promise<Pipeline> {
    const ws = await this.workspaceId();
    return new Pipeline(
      this.http,
      await this.http.json<PipelineDto>('POST', `/v1/workspaces/${ws}/pipelines`, { json: { name } }),
    );
  }

  /** A pipeline by name; `NotFoundError` when there is none. */
  async getPipeline(name: string): Promise<Pipeline> {
    const ws = await this.workspaceId();
    return new Pipeline(
      this.http,
      await this.http.json<PipelineDto>('GET', `/v1/workspaces/${ws}/pipelines/${encodeURIComponent(name)}`),
    );
  }

  /** Pipelines with this name (at most one per workspace); throws `NotFoundError` when none. */
  async pipelinesByName(name: string): Promise<Pipeline[]> {
    // Names are unique per workspace: at most one; getPipeline throws NotFoundError when none.
    return [await this.getPipeline(name)];
  }

  /** Every pipeline in the current workspace. */
  async listPipelines(): Promise<Pipeline[]> {
    const ws = await this.workspaceId();
    return (await this.http.json<PipelineDto[]>('GET', `/v1/workspaces/${ws}/pipelines`)).map(
      (p) => new Pipeline(this.http, p),
    );
  }

  // -- connections

  /**
   * Creates a connection: a named, typed details object (URL, credentials …) the server
   * keeps encrypted. Names are unique per instance: a taken one is a `ConflictError`.
   * Admin tokens only: a workspace-scoped token gets a `forbidden` AuthError.
   * @example
   *   await client.createConnection('houseprice_arrow_table', 'HTTPFILE', { host: 'https://example.com/xtest-1k.arrow' });
   */
  async createConnection(name: string, type: string, details: Record<string, unknown>): Promise<Connection> {
    return new Connection(
      this.http,
      await this.http.json<ConnectionDto>('POST', '/v1/connections', { json: { name, type, details } }),
    );
  }

  /** Every connection this token can see (an admin: all of the instance); prints as a table with details `*****`. */
  async listConnections(): Promise<ConnectionList> {
    const dtos = await this.http.json<ConnectionDto[]>('GET', '/v1/connections');
    return ConnectionList.fill(dtos.map((dto) => new Connection(this.http, dto)));
  }

  /** A connection by name; `NotFoundError` when there is none (or this token cannot see it). */
  async getConnection(name: string): Promise<Connection> {
    return new Connection(
      this.http,
      await this.http.json<ConnectionDto>('GET', `/v1/connections/${encodeURIComponent(name)}`),
    );
  }

  /**
   * The audit trail of unmasked connection reads, newest first (admin tokens only).
   * @param limit how many entries. @default 100
   */
  async connectionAudit(options: { limit?: number } = {}): Promise<ConnectionAuditEntryDto[]> {
    return this.http.json<ConnectionAuditEntryDto[]>('GET', '/v1/admin/audit', {
      query: { limit: options.limit },
    });
  }

  // -- orchestrations and tasks

  /**
   * Uploads an orchestration zip into the current workspace; it answers at once in
   * `pending_packaging` and is packaged in the background. A zip that breaks the rules
   * (no entrypoint, an entry escaping the root, a bomb) is a `ValidationError` /
   * `PayloadTooLargeError` and nothing is stored.
   * @param source `{ path }` of a zip file, or `{ bytes, fileName? }` (file name default `_`).
   * @param name the orchestration's name. @default ''
   * @example const orchestration = await client.uploadOrchestration({ path: './remote_inference.zip' }, { name: 'houseprice' });
   */
  async uploadOrchestration(
    source: { path: string } | { bytes: Uint8Array; fileName?: string },
    options: { name?: string } = {},
  ): Promise<Orchestration> {
    const ws = await this.workspaceId();
    let body: Uint8Array | ReadableStream<Uint8Array>;
    let fileName: string;
    if ('path' in source) {
      try {
        await stat(source.path);
      } catch {
        throw new ValidationError(
          'invalid_request',
          `Orchestration file "${source.path}" does not exist or cannot be read.`,
          0,
        );
      }
      body = Readable.toWeb(createReadStream(source.path)) as ReadableStream<Uint8Array>;
      fileName = basename(source.path);
    } else if (source.bytes instanceof Uint8Array) {
      body = source.bytes;
      fileName = source.fileName ?? '_';
    } else {
      throw new ValidationError(
        'invalid_request',
        'uploadOrchestration needs { path } or { bytes, fileName } of a zip.',
        0,
      );
    }
    const dto = await this.http.json<OrchestrationDto>('POST', `/v1/workspaces/${ws}/orchestrations`, {
      body,
      contentType: 'application/zip',
      query: { name: options.name ?? '', fileName },
      timeoutMs: 600_000,
    });
    return new Orchestration(this.http, dto);
  }

  /** Orchestrations of every workspace this token can see (or of `workspaceName`), oldest first. */
  async listOrchestrations(options: { workspaceName?: string } = {}): Promise<OrchestrationList> {
    const dtos = await this.http.json<OrchestrationDto[]>('GET', '/v1/orchestrations', {
      query: { workspaceName: options.workspaceName },
    });
    return OrchestrationList.fill(dtos.map((d) => new Orchestration(this.http, d)));
  }

  /** An orchestration by id; `NotFoundError` when there is none (or this token cannot see it). */
  async getOrchestration(id: string): Promise<Orchestration> {
    return new Orchestration(
      this.http,
      await this.http.json<OrchestrationDto>('GET', `/v1/orchestrations/${encodeURIComponent(id)}`),
    );
  }

  /**
   * Tasks of every workspace this token can see (or of `workspaceName`), newest first.
   * @param killed include killed tasks. @default false
   */
  async listTasks(options: { killed?: boolean; workspaceName?: string } = {}): Promise<TaskList> {
    const dtos = await this.http.json<TaskDto[]>('GET', '/v1/tasks', {
      query: { killed: options.killed, workspaceName: options.workspaceName },
    });
    return TaskList.fill(dtos.map((d) => new Task(this.http, d)));
  }

  /** A task by id; `NotFoundError` when there is none. */
  async getTask(id: string): Promise<Task> {
    return new Task(this.http, await this.http.json<TaskDto>('GET', `/v1/tasks/${encodeURIComponent(id)}`));
  }

  // -- task environment

  /** True inside a task run. */
  inTask(): boolean {
    return inTask();
  }

  /** The task's `jsonArgs` (`{}` outside a task). */
  taskArgs(): Record<string, unknown> {
    return taskArgs();
  }
}
