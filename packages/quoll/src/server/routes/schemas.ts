/** JSON schemas of the API's resources, for validation and the OpenAPI document. */

export const workspaceSchema = {
  type: 'object',
  properties: {
    id: { type: 'integer' },
    name: { type: 'string' },
    createdAt: { type: 'string' },
    isDefault: { type: 'boolean' },
  },
} as const;

const tensorInfo = {
  type: 'object',
  properties: {
    name: { type: 'string' },
    type: { type: 'string' },
    shape: { type: 'array', items: { type: ['integer', 'string', 'null'] } },
  },
} as const;

export const modelVersionSchema = {
  type: 'object',
  properties: {
    id: { type: 'integer' },
    name: { type: 'string' },
    version: { type: 'string' },
    sha: { type: 'string' },
    fileName: { type: 'string' },
    sizeBytes: { type: 'integer' },
    workspaceId: { type: 'integer' },
    framework: { type: 'string' },
    inputs: { type: 'array', items: tensorInfo },
    outputs: { type: 'array', items: tensorInfo },
    config: {
      type: 'object',
      properties: {
        tensorFields: { type: ['array', 'null'], items: { type: 'string' } },
        batchConfig: { type: ['string', 'null'] },
      },
    },
    createdAt: { type: 'string' },
  },
} as const;

const stepSchema = {
  type: 'object',
  properties: {
    model: {
      type: 'object',
      properties: { name: { type: 'string' }, version: { type: 'string' }, sha: { type: 'string' } },
    },
    // The model config a pipeline version snapshotted (absent on draft steps).
    config: modelVersionSchema.properties.config,
  },
} as const;

export const pipelineSchema = {
  type: 'object',
  properties: {
    id: { type: 'integer' },
    name: { type: 'string' },
    workspaceId: { type: 'integer' },
    createdAt: { type: 'string' },
    updatedAt: { type: 'string' },
    steps: { type: 'array', items: stepSchema },
    versions: { type: 'array', items: { type: 'string' } },
    deployed: { type: 'boolean' },
    inferencePath: { type: 'string' },
  },
} as const;

export const pipelineVersionSchema = {
  type: 'object',
  properties: {
    version: { type: 'string' },
    createdAt: { type: 'string' },
    steps: { type: 'array', items: stepSchema },
  },
} as const;

export const pipelineStatusSchema = {
  type: 'object',
  properties: {
    status: { type: 'string', enum: ['Running', 'Starting', 'Error', 'Undeployed'] },
    details: { type: 'array', items: { type: 'string' } },
    version: { type: ['string', 'null'] },
    models: {
      type: 'array',
      items: {
        type: 'object',
        properties: {
          name: { type: 'string' },
          version: { type: 'string' },
          sha: { type: 'string' },
          status: { type: 'string' },
          loadedOn: { type: 'array', items: { type: 'integer' } },
        },
      },
    },
    workers: { type: 'integer' },
    deployedAt: { type: ['string', 'null'] },
    replicas: {
      type: 'array',
      description:
        'Each node holding a replica (on an embedded server, the server itself), as it last reported',
      items: {
        type: 'object',
        properties: {
          node: { type: 'string', examples: ['4f0c2a1e-6b7d-4c1e-9a8f-3d2b1c0e9f87'] },
          nodeStatus: { type: 'string', enum: ['up', 'lost', 'stopped'] },
          status: { type: 'string', enum: ['Running', 'Starting', 'Error', 'Undeployed'] },
          version: { type: ['string', 'null'] },
          details: { type: 'array', items: { type: 'string' }, examples: [[]] },
          workers: { type: 'integer' },
          updatedAt: { type: 'string' },
        },
      },
    },
  },
} as const;

export const errorSchema = {
  type: 'object',
  properties: {
    error: {
      type: 'object',
      properties: {
        code: { type: 'string' },
        message: { type: 'string' },
        details: { type: 'object', additionalProperties: true },
      },
    },
  },
} as const;

/** A connection as listed: never any details (the serializer drops any field not named here). */
export const connectionSchema = {
  type: 'object',
  properties: {
    id: { type: 'string' },
    name: { type: 'string' },
    type: { type: 'string' },
    createdAt: { type: 'string' },
    workspaceNames: { type: 'array', items: { type: 'string' } },
  },
} as const;

/** A connection with its unmasked details (the audited details route only). */
export const connectionWithDetailsSchema = {
  type: 'object',
  properties: {
    ...connectionSchema.properties,
    details: { type: 'object', additionalProperties: true },
  },
} as const;

/** One entry of the audit trail of unmasked connection reads. */
export const connectionAuditEntrySchema = {
  type: 'object',
  properties: {
    id: { type: 'integer' },
    subject: { type: 'string' },
    connectionId: { type: 'string' },
    connectionName: { type: 'string' },
    action: { type: 'string' },
    at: { type: 'string' },
  },
} as const;

/** An orchestration (an uploaded zip and its packaging state). */
export const orchestrationSchema = {
  type: 'object',
  properties: {
    id: { type: 'string' },
    name: { type: 'string' },
    fileName: { type: 'string' },
    sha: { type: 'string' },
    status: { type: 'string', enum: ['pending_packaging', 'packaging', 'ready', 'error'] },
    error: { type: ['string', 'null'] },
    entrypoint: { type: ['string', 'null'] },
    runtime: { type: ['string', 'null'], enum: ['node', 'python', null] },
    workspaceId: { type: 'integer' },
    workspaceName: { type: 'string' },
    createdAt: { type: 'string' },
    updatedAt: { type: 'string' },
  },
} as const;

/** One line of a packaging log. */
export const packagingLogLineSchema = {
  type: 'object',
  properties: {
    time: { type: 'string' },
    source: { type: 'string', enum: ['quoll', 'npm', 'esbuild', 'pip'] },
    line: { type: 'string' },
  },
} as const;

/** A task. */
export const taskSchema = {
  type: 'object',
  properties: {
    id: { type: 'string' },
    name: { type: 'string' },
    type: { type: 'string', enum: ['Temporary Run', 'Scheduled Run', 'Continuous Run'] },
    status: { type: 'string', enum: ['pending', 'started', 'pending_kill', 'killed'] },
    orchestrationId: { type: 'string' },
    workspaceId: { type: 'integer' },
    workspaceName: { type: 'string' },
    schedule: { type: ['string', 'null'] },
    timezone: { type: ['string', 'null'] },
    jsonArgs: { type: 'object', additionalProperties: true },
    timeout: { type: ['integer', 'null'] },
    limits: {
      type: 'object',
      properties: {
        memoryBytes: { type: 'integer' },
        processes: { type: 'integer' },
        openFiles: { type: 'integer' },
        cpuSeconds: { type: 'integer' },
        diskBytes: { type: 'integer' },
      },
    },
    killed: { type: 'boolean' },
    lastRunStatus: { type: 'string' },
    statusReason: { type: ['string', 'null'] },
    createdAt: { type: 'string' },
    updatedAt: { type: 'string' },
  },
} as const;

/** A cron tick of a scheduled task that produced no run. */
export const taskTickSchema = {
  type: 'object',
  properties: {
    taskId: { type: 'string' },
    tick: { type: 'string' },
    kind: { type: 'string', enum: ['skipped', 'missed'] },
    reason: { type: 'string' },
    recordedAt: { type: 'string' },
  },
} as const;

/** One run of a task. */
export const taskRunSchema = {
  type: 'object',
  properties: {
    id: { type: 'string' },
    taskId: { type: 'string' },
    status: { type: 'string', enum: ['running', 'success', 'failure', 'timed_out', 'killed'] },
    tick: { type: ['string', 'null'] },
    exitCode: { type: ['integer', 'null'] },
    reason: { type: ['string', 'null'] },
    node: { type: ['string', 'null'] },
    createdAt: { type: 'string' },
    updatedAt: { type: 'string' },
  },
} as const;

/** One captured line of a task run. */
export const taskRunLogLineSchema = {
  type: 'object',
  properties: {
    time: { type: 'string' },
    stream: { type: 'string', enum: ['stdout', 'stderr'] },
    line: { type: 'string' },
  },
} as const;
