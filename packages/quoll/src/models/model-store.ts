import type { ModelConfigDto, ModelVersionDto, TensorInfoDto } from '@quoll/client/wire';

/** What is recorded for a new model version. */
export interface NewModelVersion {
  workspaceId: number;
  name: string;
  version: string;
  sha: string;
  fileName: string;
  sizeBytes: number;
  inputs: TensorInfoDto[];
  outputs: TensorInfoDto[];
  config: ModelConfigDto;
  createdAt: string;
}

/** Storage port for model versions. The same name uploaded again is a new version. */
export interface ModelStore {
  insertModelVersion(model: NewModelVersion): Promise<ModelVersionDto>;
  /** The newest version of `name`, or the given version. */
  getModelVersion(workspaceId: number, name: string, version?: string): Promise<ModelVersionDto | null>;
  getModelVersionByVersion(version: string): Promise<ModelVersionDto | null>;
  /** Every version in the workspace, newest first. */
  listModelVersions(workspaceId: number): Promise<ModelVersionDto[]>;
  /** Replaces a version's config; null when no such version exists. */
  setModelConfig(version: string, config: ModelConfigDto): Promise<ModelVersionDto | null>;
}
