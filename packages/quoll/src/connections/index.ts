// The connections domain: sealed details, scoping, audit, key rotation and redaction.
export { ConnectionSealer } from './connection-sealer.js';
export { ConnectionService, DEFAULT_MAX_DETAILS_BYTES } from './connection-service.js';
export type {
  ConnectionRef,
  ConnectionScope,
  ConnectionServiceOptions,
  CreateConnectionInput,
} from './connection-service.js';
export type {
  AttachOutcome,
  CreateConnectionOutcome,
  ConnectionAuditAction,
  ConnectionAuditEntry,
  ConnectionDetails,
  ConnectionRecord,
  ConnectionStore,
  NewConnection,
  SealedConnectionRecord,
  SealedDetails,
  StoredConnectionAuditEntry,
} from './connection-store.js';
export { clusterKeyStatus } from './cluster-key-status.js';
export type {
  ClusterKeyStatus,
  ClusterKeyStatusOptions,
  KeyIdStatus,
  NodeKeyStatus,
  RotationReadiness,
} from './cluster-key-status.js';
export { FileKeyring, StaticKeyring, createKeyring } from './keyring.js';
export { UNREGISTERED_REPORT_MS, UNREPORTED_KEY_ID, verifyMasterKey } from './master-key-check.js';
export type {
  KeyCheckState,
  KeyCheckStore,
  KeyStatusSnapshot,
  NodeKeyReport,
  RetireBlocked,
  RetiredKey,
  VerifyMasterKeyOptions,
} from './master-key-check.js';
export type { Keyring } from './keyring.js';
export {
  DECRYPT_ONLY_KEYS_ENV,
  MASTER_KEY_ENV,
  MASTER_KEY_FILE,
  MasterKeyError,
  NEXT_KEY_FILE,
  OLD_KEY_FILE,
  generateMasterKey,
  loadDecryptOnlyKeys,
  loadMasterKey,
  masterKeyId,
  parseMasterKey,
} from './master-key.js';
export type { LoadMasterKeyOptions, MasterKey } from './master-key.js';
export { ReturnKeyCheck } from './return-key-check.js';
export type { ReturnKeyCheckOptions } from './return-key-check.js';
export { retireOldKey, rotateKey } from './rotate-key.js';
export { rotateClusterKey } from './rotate-cluster-key.js';
export type {
  RotateClusterKeyOptions,
  RotateClusterKeyProgress,
  RotateClusterKeyResult,
} from './rotate-cluster-key.js';
export type {
  RetireOldKeyOptions,
  RotateKeyOptions,
  RotateKeyProgress,
  RotateKeyResult,
} from './rotate-key.js';
export {
  MASK,
  MIN_SECRET_LENGTH,
  SecretRedactor,
  collectSecretValues,
  makeRedactor,
} from './secret-redactor.js';
