import { randomUUID } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import type { ModelConfigDto, ModelVersionDto, TensorInfoDto } from '@quoll/client/wire';
import type { BlobStore } from '../blobs/index.js';
import { ApiError } from '../errors/index.js';
import type { ModelStore } from './model-store.js';
import { validateName } from '../validation/index.js';

/** Reads a model's declared inputs/outputs and proves the runtime can load it. */
export interface ModelInspector {
  /** Parses the file; throws `invalid_model` when it is not ONNX. */
  inspect(bytes: Uint8Array): { inputs: TensorInfoDto[]; outputs: TensorInfoDto[] };
  /** Creates a runtime session off the event loop; throws `invalid_model` when it cannot. */
  validate(path: string): Promise<void>;
}

/** What `configure()` may change. */
export interface ModelConfigPatch {
  tensorFields?: unknown;
  batchConfig?: unknown;
}

/** Model upload, versions and configuration. */
export class ModelService {
  constructor(
    private readonly store: ModelStore,
    private readonly blobs: BlobStore,
    private readonly inspector: ModelInspector,
    private readonly maxModelBytes: number,
    private readonly now: () => number,
  ) {}

  /**
   * Stores a new version of `name`: the body is streamed to a temporary file, hashed, parsed
   * and loaded once by the runtime before anything is recorded, so a bad file leaves no trace.
   * `config` (tensor fields, batch config) is checked against the model in the same step.
   */
  /** The largest model file accepted, in bytes. */
  get maxUploadBytes(): number {
    return this.maxModelBytes;
  }

  async upload(
    workspaceId: number,
    name: unknown,
    fileName: unknown,
    body: Readable,
    config: ModelConfigPatch = {},
  ): Promise<ModelVersionDto> {
    const modelName = validateName('model', name);
    const file = await this.blobs.receive(body, this.maxModelBytes, 'model file');
    try {
      if (file.size === 0)
        throw new ApiError('invalid_model', 'The model file is empty; upload an ONNX model file (.onnx).');
      const info = this.inspector.inspect(await readFile(file.path));
      // A config given with the upload is checked before anything is kept.
      const modelConfig = applyConfigPatch(
        modelName,
        info.inputs,
        { tensorFields: null, batchConfig: null },
        config,
      );
      await this.inspector.validate(file.path);
      await this.blobs.commit(file);
      return await this.store.insertModelVersion({
        workspaceId,
        name: modelName,
        version: randomUUID(),
        sha: file.sha256,
        fileName: typeof fileName === 'string' && fileName !== '' ? fileName : `${modelName}.onnx`,
        sizeBytes: file.size,
        inputs: info.inputs,
        outputs: info.outputs,
        config: modelConfig,
        createdAt: new Date(this.now()).toISOString(),
      });
    } finally {
      // A committed file was moved away; this removes only what was not kept.
      await this.blobs.discard(file);
    }
  }

  async get(workspaceId: number, name: string, version?: string): Promise<ModelVersionDto> {
    const m = await this.store.getModelVersion(workspaceId, name, version);
    if (m) return m;
    if (version !== undefined && (await this.store.getModelVersion(workspaceId, name))) {
      throw new ApiError(
        'model_not_found',
        `Model "${name}" has no version ${version} in this workspace; listModels() shows its versions.`,
        {
          name,
          version,
        },
      );
    }
    throw new ApiError(
      'model_not_found',
      `A model with the name "${name}" does not exist in this workspace; upload it with uploadModel().`,
      {
        name,
      },
    );
  }

  async list(workspaceId: number): Promise<ModelVersionDto[]> {
    return this.store.listModelVersions(workspaceId);
  }

  /** Model versions of several workspaces (those a caller can see), newest first, optionally of one `name`. */
  async listIn(workspaceIds: readonly number[], filter: { name?: string } = {}): Promise<ModelVersionDto[]> {
    const lists = await Promise.all(workspaceIds.map((id) => this.store.listModelVersions(id)));
    return lists
      .flat()
      .filter((m) => filter.name === undefined || m.name === filter.name)
      .sort((a, b) => b.createdAt.localeCompare(a.createdAt) || b.id - a.id);
  }

  /**
   * Path of a version's bytes on this node: on a node of a cluster they are fetched from the
   * shared storage when not cached, and their SHA-256 is checked before the path is returned.
   */
  localPath(model: ModelVersionDto): Promise<string> {
    return this.blobs.localPath(model.sha);
  }

  /** Sets tensor fields / batch config; both are checked against the model before saving. */
  async configure(
    workspaceId: number,
    name: string,
    version: string,
    patch: ModelConfigPatch,
  ): Promise<ModelVersionDto> {
    const model = await this.get(workspaceId, name, version);
    const updated = await this.store.setModelConfig(
      model.version,
      applyConfigPatch(name, model.inputs, model.config, patch),
    );
    if (updated === null) {
      throw new ApiError('model_not_found', `No model version ${model.version} exists.`, {
        version: model.version,
      });
    }
    return updated;
  }
}

/** Checks a config patch against the model's inputs and returns the new config. */
function applyConfigPatch(
  name: string,
  inputs: TensorInfoDto[],
  base: ModelConfigDto,
  patch: ModelConfigPatch,
): ModelConfigDto {
  const config: ModelConfigDto = { ...base };
  if (patch.tensorFields !== undefined) {
    const tf = patch.tensorFields;
    if (tf !== null) {
      if (!Array.isArray(tf) || tf.some((f) => typeof f !== 'string' || f === '')) {
        throw new ApiError(
          'invalid_model_config',
          'tensorFields must be a list of column names, e.g. ["tensor"].',
          {
            tensorFields: tf,
          },
        );
      }
      if (tf.length !== inputs.length) {
        throw new ApiError(
          'invalid_model_config',
          `tensorFields has ${tf.length} name(s) but model "${name}" has ${inputs.length} input(s) (${inputs
            .map((i) => i.name)
            .join(', ')}); give one column per input, in input order.`,
          { tensorFields: tf as string[], inputs: inputs.map((i) => i.name) },
        );
      }
      if (new Set(tf).size !== tf.length) {
        throw new ApiError(
          'invalid_model_config',
          `tensorFields names a column twice: ${JSON.stringify(tf)}.`,
        );
      }
    }
    config.tensorFields = tf as string[] | null;
  }
  if (patch.batchConfig !== undefined) {
    if (patch.batchConfig !== null && patch.batchConfig !== 'single') {
      throw new ApiError(
        'invalid_model_config',
        `batchConfig must be "single" or null, not ${JSON.stringify(patch.batchConfig)}.`,
      );
    }
    config.batchConfig = patch.batchConfig;
  }
  return config;
}
