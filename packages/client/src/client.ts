import { Connection, ConnectionList } from './connections/index.js';
import { NotFoundError, ValidationError } from './errors/index.js';
import {
  HttpTransport,
  withUploadProgress,
  type ClientOptions,
  type RequestBody,
  type UploadProgress,
} from './http/index.js';
import { ModelVersion } from './models/index.js';
import { Orchestration, OrchestrationList } from './orchestrations/index.js';
import { Pipeline } from './pipelines/index.js';
import { browserPlatform, type ClientPlatform } from './platform/index.js';
import { inTask, taskArgs } from './task-env/index.js';
import { Task, TaskList } from './tasks/index.js';
import type {
  ApiTokenDto,
  ConnectionAuditEntryDto,
  ConnectionDto,
  ModelVersionDto,
  OrchestrationDto,
  PipelineDto,
  IssuedTokenDto,
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
  /** Called as the bytes are sent (the CLI draws its progress line with it). @default none */
  onProgress?: UploadProgress;
}

/**
 * Which workspaces a listing covers. Without any: the current workspace for models and
 * pipelines, every workspace the token can see for orchestrations and tasks (as the original).
 */
export interface WorkspaceFilterOptions {
  /** Only this workspace (by id). */
  workspaceId?: number;
  /** Only this workspace (by name). */
  workspaceName?: string;
  /** Every workspace the token can see (models and pipelines). @default false */
  allWorkspaces?: boolean;
}

/**
 * The entry point of the SDK. In Node, `new Client()` finds the server by itself (see
 * `ClientOptions`); in a browser it talks to the page's origin unless given `{ url, token }`.
 * @example
 *   import { Client } from '@quoll/client';
 *   const client = new Client(); // Node: ./.quoll/credentials.json, or QUOLL_URL + QUOLL_TOKEN
 *   const ws = await client.getWorkspace('orchestrationworkspace', { createIfNotExist: true });
 *   client.setCurrentWorkspace(ws);
 */
export class Client {
  /** @internal */
  readonly http: HttpTransport;
  /** @internal */
  readonly platform: ClientPlatform;
  private current: Workspace | null = null;

  /** @param platform @internal the host (the Node entry passes its own). */
  constructor(options: ClientOptions = {}, platform: ClientPlatform = browserPlatform) {
    const { url, token } = platform.resolveTarget(options);
    this.platform = platform;
    this.http = new HttpTransport(url, token, {
      ...(options.headers ? { headers: options.headers } : {}),
      ...(options.fetch ? { fetch: options.fetch } : {}),
    });
  }

  /** Base URL of the server. */
  get url(): string {
    return this.http.baseUrl;
  }

  /**
   * The header that authenticates this client, for calling the HTTP API with another tool
   * (`{}` when the client has no token, e.g. a browser session).
   * @example await fetch(pipeline.url(), { method: 'POST', headers: { ...client.authHeader(), 'content-type': 'application/json' }, body })
   */
  authHeader(): Record<string, string> {
    return this.http.authHeader();
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
   * Issues a token that sees only `workspace` (an admin API token only: not a run's token or
   * a console session) and returns the token alone; {@link issueWorkspaceToken} also returns
   * its id, which {@link revokeToken} takes.
   * @param options `subject` (who it is for) and `ttlSeconds` (how long it lives, at most ten years; default forever).
   */
  async createWorkspaceToken(
    workspace: Workspace,
    options: { subject?: string; ttlSeconds?: number } = {},
  ): Promise<string> {
    return (await this.issueWorkspaceToken(workspace, options)).token;
  }

  /**
   * Issues a token that sees only `workspace` (an admin API token only) and returns it with its
   * id: keep the id to revoke the token later. The subject may not start with
   * `console-session:`, `console-link:` or `task-run:`.
   * @param options `subject` (who it is for) and `ttlSeconds` (how long it lives, at most ten years; default forever).
   * @example
   * const { id, token } = await client.issueWorkspaceToken(ws, { subject: 'ci', ttlSeconds: 86400 });
   * await client.revokeToken(id);
   */
  async issueWorkspaceToken(
    workspace: Workspace,
    options: { subject?: string; ttlSeconds?: number } = {},
  ): Promise<IssuedTokenDto> {
    return this.http.json<IssuedTokenDto>('POST', `/v1/workspaces/${workspace.id}/tokens`, {
      json: options,
    });
  }

  /** Live API tokens, newest first, without their secrets (admin token only). */
  async listTokens(): Promise<ApiTokenDto[]> {
    return this.http.json<ApiTokenDto[]>('GET', '/v1/admin/tokens');
  }

  /**
   * Revokes an API token by id: it stops working at once, and so do the console sessions made
   * from it (admin token only). `token_not_found` when no live API token has this id.
   */
  async revokeToken(id: string): Promise<void> {
    await this.http.send('DELETE', `/v1/admin/tokens/${encodeURIComponent(id)}`);
  }

  /** @internal */
  async workspaceId(): Promise<number> {
    return (await this.getCurrentWorkspace()).id;
  }

  // -- models

  /**
   * Uploads an ONNX model into the current workspace from a path (Node), bytes or a
   * `Blob`/`File`; the same name again makes a new version.
   * @example const model = await client.uploadModel('orchestrationmodel', './models/rf_model.onnx');
   */
  async uploadModel(
    name: string,
    pathOrBytes: string | Uint8Array | Blob,
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
    let body: RequestBody;
    let fileName: string;
    let size: number | null = null;
    if (typeof pathOrBytes === 'string') {
      const file = await this.platform.openFile(pathOrBytes, {
        what: 'Model file',
        hint: 'give the path of an .onnx file',
      });
      body = file.body;
      fileName = options.fileName ?? file.fileName;
      size = file.size ?? null;
    } else if (pathOrBytes instanceof Uint8Array || isBlob(pathOrBytes)) {
      body = pathOrBytes;
      fileName = options.fileName ?? blobName(pathOrBytes) ?? `${name}.onnx`;
    } else {
      throw new ValidationError(
        'invalid_request',
        'uploadModel() takes a file path, a Uint8Array or a Blob/File of an ONNX model.',
        0,
      );
    }
    const upload = withUploadProgress(body, size, options.onProgress);
    const dto = await this.http.json<ModelVersionDto>('POST', `/v1/workspaces/${ws}/models`, {
      body: upload.body,
      contentType: 'application/octet-stream',
      query: {
        name,
        fileName,
        tensorFields: options.tensorFields?.join(','),
        batchConfig: options.batchConfig,
      },
      timeoutMs: 600_000,
    });
    upload.finished();
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

  /**
   * Model versions newest first: of the current workspace, or of the workspace or all the
   * workspaces the options name.
   * @example await client.listModels({ workspaceName: 'orchestrationworkspace' })
   */
  async listModels(options: WorkspaceFilterOptions = {}): Promise<ModelVersion[]> {
    return (
      await this.http.json<ModelVersionDto[]>('GET', '/v1/models', { query: await this.scopeQuery(options) })
    ).map((m) => new ModelVersion(this.http, m));
  }

  /** The query of a listing that defaults to the current workspace. */
  private async scopeQuery(
    options: WorkspaceFilterOptions,
  ): Promise<Record<string, string | number | undefined>> {
    const named = options.workspaceId !== undefined || (options.workspaceName ?? '') !== '';
    if (named) return { workspaceId: options.workspaceId, workspaceName: options.workspaceName || undefined };
    return options.allWorkspaces === true ? {} : { workspaceId: await this.workspaceId() };
  }

  // -- pipelines

  /** Creates a pipeline, or returns the existing one of that name. */
  async buildPipeline(name: string): Promise<Pipeline> {
    const ws = await this.workspaceId();
    return new Pipeline(
      this.http,
      await this.http.json<PipelineDto>('POST', `/v1/workspaces/${ws}/pipelines`, { json: { name } }),
      this.platform,
    );
  }

  /** A pipeline by name; `NotFoundError` when there is none. */
  async getPipeline(name: string): Promise<Pipeline> {
    const ws = await this.workspaceId();
    return new Pipeline(
      this.http,
      await this.http.json<PipelineDto>('GET', `/v1/workspaces/${ws}/pipelines/${encodeURIComponent(name)}`),
      this.platform,
    );
  }

  /**
   * Pipelines with this name in every workspace the token can see (at most one per workspace),
   * oldest first; throws `NotFoundError` when there is none.
   */
  async pipelinesByName(name: string): Promise<Pipeline[]> {
    const dtos = await this.http.json<PipelineDto[]>('GET', '/v1/pipelines', { query: { name } });
    if (dtos.length === 0) {
      throw new NotFoundError(
        'pipeline_not_found',
        `Pipeline not found: no workspace this token can see has a pipeline named "${name}".`,
        404,
        { pipelineName: name },
      );
    }
    return dtos.map((p) => new Pipeline(this.http, p, this.platform));
  }

  /**
   * Pipelines oldest first: of the current workspace, or of the workspace or all the workspaces
   * the options name.
   */
  async listPipelines(options: WorkspaceFilterOptions = {}): Promise<Pipeline[]> {
    return (
      await this.http.json<PipelineDto[]>('GET', '/v1/pipelines', { query: await this.scopeQuery(options) })
    ).map((p) => new Pipeline(this.http, p, this.platform));
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
   * @param source `{ path }` of a zip file (Node), or `{ bytes, fileName? }` with a
   *   `Uint8Array` or a `Blob`/`File` (file name default: the File's name, else `orchestration.zip`).
   * @param name the orchestration's name. @default ''
   * @param onProgress called as the bytes are sent. @default none
   * @example const orchestration = await client.uploadOrchestration({ path: './remote_inference.zip' }, { name: 'houseprice' });
   */
  async uploadOrchestration(
    source: { path: string } | { bytes: Uint8Array | Blob; fileName?: string },
    options: { name?: string; onProgress?: UploadProgress } = {},
  ): Promise<Orchestration> {
    const ws = await this.workspaceId();
    let body: RequestBody;
    let fileName: string;
    let size: number | null = null;
    if ('path' in source && typeof source.path === 'string') {
      const file = await this.platform.openFile(source.path, {
        what: 'Orchestration file',
        hint: 'give the path of a .zip file',
      });
      body = file.body;
      fileName = file.fileName;
      size = file.size ?? null;
    } else if ('bytes' in source && (source.bytes instanceof Uint8Array || isBlob(source.bytes))) {
      body = source.bytes;
      fileName = source.fileName ?? blobName(source.bytes) ?? 'orchestration.zip';
    } else {
      throw new ValidationError(
        'invalid_request',
        'uploadOrchestration() needs { path } or { bytes, fileName } of a zip.',
        0,
      );
    }
    const upload = withUploadProgress(body, size, options.onProgress);
    const dto = await this.http.json<OrchestrationDto>('POST', `/v1/workspaces/${ws}/orchestrations`, {
      body: upload.body,
      contentType: 'application/zip',
      query: { name: options.name ?? '', fileName },
      timeoutMs: 600_000,
    });
    upload.finished();
    return new Orchestration(this.http, dto);
  }

  /** Orchestrations of every workspace this token can see (or of `workspaceId` / `workspaceName`), oldest first. */
  async listOrchestrations(
    options: { workspaceId?: number; workspaceName?: string } = {},
  ): Promise<OrchestrationList> {
    const dtos = await this.http.json<OrchestrationDto[]>('GET', '/v1/orchestrations', {
      query: { workspaceId: options.workspaceId, workspaceName: options.workspaceName || undefined },
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
   * Tasks of every workspace this token can see (or of `workspaceId` / `workspaceName`), newest
   * first; `orchestrationSha` keeps the tasks of orchestrations uploaded with that zip.
   * @param killed include killed tasks. @default false
   */
  async listTasks(
    options: {
      killed?: boolean;
      workspaceId?: number;
      workspaceName?: string;
      orchestrationSha?: string;
    } = {},
  ): Promise<TaskList> {
    const dtos = await this.http.json<TaskDto[]>('GET', '/v1/tasks', {
      query: {
        killed: options.killed,
        workspaceId: options.workspaceId,
        workspaceName: options.workspaceName || undefined,
        orchestrationSha: options.orchestrationSha,
      },
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

/** A Blob or File (of this realm or another: `instanceof` fails across realms and polyfills). */
function isBlob(value: unknown): value is Blob {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as Blob).arrayBuffer === 'function' &&
    typeof (value as Blob).stream === 'function' &&
    typeof (value as Blob).size === 'number'
  );
}

/** A File's own name, when it has one. */
function blobName(value: Uint8Array | Blob): string | undefined {
  const name = (value as { name?: unknown }).name;
  return typeof name === 'string' && name !== '' ? name : undefined;
}
