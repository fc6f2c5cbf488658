/**
 * The one catalogue of error codes that the server returns and the SDK rebuilds.
 * Every code has an HTTP status, the SDK error class it becomes and a one-line meaning
 * (the message itself names the bad value and the fix, and is written where it is raised).
 * `docs/errors.md` lists the same codes; a test keeps the two in step.
 */
export const ERROR_CODES = {
  // auth
  unauthenticated: { status: 401, kind: 'auth', summary: 'No bearer token was sent.' },
  invalid_token: {
    status: 401,
    kind: 'auth',
    summary:
      'The bearer token (or console session) is unknown, revoked or expired; a console session also ends when the API token it came from is revoked or expires.',
  },
  forbidden: {
    status: 403,
    kind: 'auth',
    summary:
      "The token may not do this (e.g. a workspace-scoped token on an admin route, or a task run's token or a console session asking for a console session, a sign-in link or a new token).",
  },
  csrf_failed: {
    status: 403,
    kind: 'auth',
    summary:
      "A request that changes something was signed in by the console's session cookie without the session's CSRF token (x-quoll-csrf) or from another origin.",
  },
  sandbox_unavailable: {
    status: 403,
    kind: 'auth',
    summary:
      'Task runs are not sandboxed on this server, and workspace-scoped tokens may only start sandboxed runs.',
  },
  // validation
  invalid_request: {
    status: 400,
    kind: 'validation',
    summary:
      'The request body, query or parameters do not match the API schema; a body field or query parameter the route does not declare is refused too, named with the accepted ones.',
  },
  invalid_name: {
    status: 400,
    kind: 'validation',
    summary: 'A name is empty, too long or has characters that are not allowed.',
  },
  invalid_model: {
    status: 400,
    kind: 'validation',
    summary:
      'The uploaded file is not a valid ONNX model, or holds what onnxruntime could not load without crashing: a tree ensemble with a tree deeper than 1024 levels (the message names its depth and the limit); a model stored before that check fails its deployment with the same message in the pipeline status.',
  },
  invalid_model_config: {
    status: 400,
    kind: 'validation',
    summary: 'configure() was given tensor fields or a batch config that do not fit the model.',
  },
  invalid_deployment_config: {
    status: 400,
    kind: 'validation',
    summary:
      "A deployment config asks for what the server cannot honour (replicas > 1 on an embedded server, workers and cpus that disagree, memory below the models' size).",
  },
  invalid_step: {
    status: 400,
    kind: 'validation',
    summary: 'A pipeline step index is out of range or the pipeline has no steps to deploy.',
  },
  invalid_inference_input: {
    status: 400,
    kind: 'validation',
    summary:
      'The inference body cannot be read as JSON records or Arrow IPC, or holds a value the model input cannot take (a boolean, NaN, ±Infinity, beyond the range of its type, or anything but 0 and 1 for a bool input), or feeds a float16 input (Quoll feeds none); the message names the column and, for a value, its row.',
  },
  unknown_input_column: {
    status: 400,
    kind: 'validation',
    summary: 'An input column does not map to any model input.',
  },
  unknown_output: {
    status: 400,
    kind: 'validation',
    summary: 'An Open Inference request asks for an output the pipeline does not have.',
  },
  missing_model_input: {
    status: 400,
    kind: 'validation',
    summary: 'A model input has no column that maps to it.',
  },
  invalid_tensor_shape: {
    status: 400,
    kind: 'validation',
    summary: 'A tensor value has the wrong width or shape for the model input.',
  },
  non_numeric_value: { status: 400, kind: 'validation', summary: 'A tensor value is not a number.' },
  input_decode_timeout: {
    status: 400,
    kind: 'validation',
    summary:
      'The inference body was not decoded within its deadline and was abandoned (it is most likely corrupt).',
  },
  unsupported_media_type: {
    status: 415,
    kind: 'validation',
    summary:
      'The Content-Type is not one the endpoint accepts, or the body is compressed (a Content-Encoding other than identity).',
  },
  not_acceptable: {
    status: 406,
    kind: 'validation',
    summary: 'The Accept header asks for a format the endpoint cannot produce.',
  },
  header_too_large: {
    status: 431,
    kind: 'validation',
    summary:
      "The request's headers are over the server's limit (16 KiB in all, e.g. an oversized token or cookie); the connection is closed.",
  },
  request_timeout: {
    status: 408,
    kind: 'validation',
    summary:
      "The request's headers did not arrive in full within the server's deadline (60 s), or its body paused too long or arrived too slowly (QUOLL_BODY_IDLE_TIMEOUT_MS, QUOLL_BODY_MIN_RATE); the connection is closed.",
  },
  invalid_time_range: {
    status: 400,
    kind: 'validation',
    summary: 'A log query gave start without end (or the reverse), or start is after end.',
  },
  invalid_data_size: {
    status: 400,
    kind: 'validation',
    summary: 'A data size string is not of the form "<number> <KiB|MiB|GiB|TiB>" or is not positive.',
  },
  invalid_connection: {
    status: 400,
    kind: 'validation',
    summary: 'A connection type is empty or its details are not a JSON object within the size cap.',
  },
  invalid_archive: {
    status: 400,
    kind: 'validation',
    summary: 'The orchestration upload is not a readable zip archive.',
  },
  archive_no_entrypoint: {
    status: 400,
    kind: 'validation',
    summary: 'The orchestration zip has no main.py or main.ts/main.js (or single script) entrypoint.',
  },
  archive_two_entrypoints: {
    status: 400,
    kind: 'validation',
    summary: 'The orchestration zip has both a TypeScript/JavaScript and a Python entrypoint.',
  },
  python_unavailable: {
    status: 400,
    kind: 'validation',
    summary:
      'The zip is a Python orchestration but this server has no usable Python >= 3.9 with venv (QUOLL_PYTHON / --python).',
  },
  archive_unsafe_entry: {
    status: 400,
    kind: 'validation',
    summary: 'An orchestration zip entry escapes the root (../, absolute path or link).',
  },
  dependency_source_refused: {
    status: 400,
    kind: 'validation',
    summary:
      'An orchestration dependency is fetched from git (git+…, github:, user/repo, a lockfile git entry); installs take dependencies from the registry or the zip only.',
  },
  invalid_schedule: { status: 400, kind: 'validation', summary: 'A cron schedule or time zone is invalid.' },
  invalid_task_args: { status: 400, kind: 'validation', summary: 'Task jsonArgs or timeout are not valid.' },
  // too large
  payload_too_large: {
    status: 413,
    kind: 'payload_too_large',
    summary: 'The request body is over the size cap for this route.',
  },
  archive_too_large: {
    status: 413,
    kind: 'payload_too_large',
    summary: 'The orchestration zip expands past the size or compression-ratio cap (zip bomb guard).',
  },
  // not found
  route_not_found: { status: 404, kind: 'not_found', summary: 'No API route has this method and path.' },
  session_not_found: {
    status: 404,
    kind: 'not_found',
    summary: 'No live console session has this id.',
  },
  token_not_found: {
    status: 404,
    kind: 'not_found',
    summary:
      'No live API token has this id (revoked, expired, unknown, or a console session: those are revoked under /v1/admin/sessions).',
  },
  workspace_not_found: {
    status: 404,
    kind: 'not_found',
    summary: 'No workspace has this name or id (or the token cannot see it).',
  },
  model_not_found: {
    status: 404,
    kind: 'not_found',
    summary: 'No model has this name or version in the workspace.',
  },
  pipeline_not_found: {
    status: 404,
    kind: 'not_found',
    summary: 'No pipeline has this name in the workspace.',
  },
  connection_not_found: {
    status: 404,
    kind: 'not_found',
    summary: 'No connection has this name (or the token cannot see it).',
  },
  orchestration_not_found: { status: 404, kind: 'not_found', summary: 'No orchestration has this id.' },
  task_not_found: { status: 404, kind: 'not_found', summary: 'No task has this id.' },
  task_run_not_found: { status: 404, kind: 'not_found', summary: 'No task run has this id.' },
  // conflict
  workspace_exists: { status: 409, kind: 'conflict', summary: 'A workspace with this name already exists.' },
  connection_exists: {
    status: 409,
    kind: 'conflict',
    summary: 'A connection with this name already exists.',
  },
  orchestration_not_ready: {
    status: 409,
    kind: 'conflict',
    summary: 'The orchestration is not packaged (status is not ready).',
  },
  task_killed: { status: 409, kind: 'conflict', summary: 'The task was killed; it starts no more runs.' },
  // deployment state
  pipeline_not_deployed: {
    status: 409,
    kind: 'not_deployed',
    summary: 'The pipeline is not deployed, so it cannot serve inferences.',
  },
  pipeline_not_ready: {
    status: 503,
    kind: 'not_deployed',
    summary: 'The pipeline is deploying or failed to load; status() says why.',
  },
  replica_unavailable: {
    status: 503,
    kind: 'not_deployed',
    summary:
      'On a cluster: the request reached a node without a replica of the pipeline, and no node holding one could take it (loading, failed, lost or unreachable); details.nodes names them. Retry shortly.',
  },
  // server side
  inference_failed: { status: 500, kind: 'internal', summary: 'The model runtime failed on this input.' },
  timeout: { status: 504, kind: 'internal', summary: 'The operation did not finish in time.' },
  shutting_down: { status: 503, kind: 'internal', summary: 'The server is stopping and takes no new work.' },
  server_busy: {
    status: 503,
    kind: 'internal',
    summary:
      'The server already holds as many request bodies as its memory budget allows; retry shortly (or send smaller requests).',
  },
  storage_full: {
    status: 507,
    kind: 'internal',
    summary:
      "The server's disk (or quota) is full, so nothing was written; free space on the server and retry.",
  },
  log_store_unavailable: {
    status: 503,
    kind: 'internal',
    summary:
      'The inference log cannot be written right now (e.g. a disk error) and its queue is full; the writer retries, GET /v1/health shows its state.',
  },
  log_rows_refused: {
    status: 500,
    kind: 'internal',
    summary:
      "The inference ran, but its rows could not be taken into the inference log (they do not match their own columns' types, or reading them failed), so this request was refused alone; the log goes on with every other request's rows, and the server log has the details.",
  },
  node_id_in_use: {
    status: 409,
    kind: 'conflict',
    summary:
      'A cluster node refused to start: another running process holds its node id (a copied --home, or the same QUOLL_NODE_ID twice) and still sends heartbeats. Give each node its own id, or stop the other process.',
  },
  invalid_master_key: {
    status: 400,
    kind: 'validation',
    summary:
      'A master key (QUOLL_MASTER_KEY, an entry of QUOLL_MASTER_KEY_DECRYPT_ONLY, or a key file) is not a 32-byte key (64 hex or 44 base64 characters), or its key file is readable by group or others; the message names the source, never the value. Also: `quoll admin rotate-key` was given no master key at all.',
  },
  master_key_mismatch: {
    status: 409,
    kind: 'conflict',
    summary:
      "A cluster node (or `quoll admin rotate-key`) does not hold the key the database's key check is sealed with: every node needs the database's current master key, as its key or, during a rotation, as a decrypt-only key (QUOLL_MASTER_KEY_DECRYPT_ONLY). During a rotation a node is also refused when it lacks the key another live node seals with, when another live node does not hold the key it would seal with (a mistyped new key), or when it lacks the old key before the rotation finished (rows may still be sealed under it). The message names the key ids and the nodes.",
  },
  master_key_retired: {
    status: 409,
    kind: 'conflict',
    summary:
      "A cluster node was started with a master key that a finished key rotation retired (nothing is sealed under it any more): give it the cluster's current key (the message names both key ids).",
  },
  master_key_unknown: {
    status: 409,
    kind: 'conflict',
    summary:
      '`quoll admin rotate-key` found a connection sealed under a key it was not given: add that key (by its id, named in the message) to QUOLL_MASTER_KEY_DECRYPT_ONLY and run it again. Nothing was lost.',
  },
  key_rotation_pending: {
    status: 409,
    kind: 'conflict',
    summary:
      '`quoll admin rotate-key` on a cluster cannot re-seal yet (or cannot retire the old key): a live node still seals with another key than the new one. Restart those nodes (named with their key ids) with the new key, then run it again; it resumes where it stopped.',
  },
  migrate_source_invalid: {
    status: 400,
    kind: 'validation',
    summary:
      '`quoll admin migrate --from-home` was given no Quoll home, or one whose files do not match what its database records (a missing or damaged model file or archive).',
  },
  migrate_target_not_empty: {
    status: 409,
    kind: 'conflict',
    summary:
      "`quoll admin migrate` refuses a database that already holds data or another home's migration; it copies a home only into a new, empty database (re-running the same home's migration is fine).",
  },
  migrate_verification_failed: {
    status: 500,
    kind: 'internal',
    summary:
      'After `quoll admin migrate` copied a home, a count or SHA-256 in the database did not match the home; run it again.',
  },
  database_unavailable: {
    status: 503,
    kind: 'internal',
    summary:
      'The database cannot be reached right now; the server keeps reconnecting and GET /v1/health shows its state. Retry shortly.',
  },
  internal_error: {
    status: 500,
    kind: 'internal',
    summary: 'An unexpected server error; the server log has details.',
  },
} as const satisfies Record<string, { status: number; kind: ErrorKind; summary: string }>;

/** Which SDK error class a code becomes. */
export type ErrorKind =
  'auth' | 'validation' | 'payload_too_large' | 'not_found' | 'conflict' | 'not_deployed' | 'internal';

/** A stable error code from the catalogue. */
export type ErrorCode = keyof typeof ERROR_CODES;

/** Whether a string is a code in the catalogue. */
export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === 'string' && Object.prototype.hasOwnProperty.call(ERROR_CODES, value);
}

/** The body of every error response. */
export interface ErrorBody {
  error: { code: ErrorCode; message: string; details?: Record<string, unknown> };
}
