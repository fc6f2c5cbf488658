import { inspectCustom, renderFields } from '../format/index.js';
import type { HttpTransport } from '../http/index.js';
import type { ModelConfigDto, ModelVersionDto, TensorInfoDto } from '../wire/index.js';

/** Options of `configure()`. */
export interface ConfigureOptions {
  /** Input column names, one per model input, in input order. @default null (map by name) */
  tensorFields?: string[] | null;
  /** `'single'` runs one row at a time. @default null */
  batchConfig?: 'single' | null;
}

/** One uploaded version of a model. */
export class ModelVersion {
  /** @internal */
  constructor(
    private readonly http: HttpTransport,
    private dto: ModelVersionDto,
  ) {}

  get name(): string {
    return this.dto.name;
  }
  /** UUID of this version. */
  get version(): string {
    return this.dto.version;
  }
  /** SHA-256 of the uploaded bytes. */
  get sha(): string {
    return this.dto.sha;
  }
  get fileName(): string {
    return this.dto.fileName;
  }
  get workspaceId(): number {
    return this.dto.workspaceId;
  }
  get inputs(): TensorInfoDto[] {
    return this.dto.inputs;
  }
  get outputs(): TensorInfoDto[] {
    return this.dto.outputs;
  }
  get config(): ModelConfigDto {
    return this.dto.config;
  }
  get createdAt(): string {
    return this.dto.createdAt;
  }

  /**
   * Sets how request columns map to the model and returns this version, configured.
   * @example const model = await (await client.uploadModel('m', './rf_model.onnx')).configure({ tensorFields: ['tensor'] });
   */
  async configure(options: ConfigureOptions = {}): Promise<this> {
    const body: Record<string, unknown> = {};
    if (options.tensorFields !== undefined) body.tensorFields = options.tensorFields;
    if (options.batchConfig !== undefined) body.batchConfig = options.batchConfig;
    this.dto = await this.http.json<ModelVersionDto>(
      'PATCH',
      `/v1/workspaces/${this.workspaceId}/models/${encodeURIComponent(this.name)}/versions/${this.version}/config`,
      { json: body },
    );
    return this;
  }

  toJSON(): ModelVersionDto {
    return { ...this.dto };
  }

  toString(): string {
    const io = (t: TensorInfoDto[]): string =>
      t.map((x) => `${x.name}: ${x.type}[${x.shape.map((d) => d ?? '?').join(',')}]`).join('; ');
    return renderFields([
      ['name', this.name],
      ['version', this.version],
      ['file name', this.fileName],
      ['sha', this.sha],
      ['inputs', io(this.inputs)],
      ['outputs', io(this.outputs)],
      ['tensor fields', this.config.tensorFields ? this.config.tensorFields.join(', ') : null],
      ['created at', this.createdAt],
    ]);
  }

  [inspectCustom](): string {
    return this.toString();
  }
}
