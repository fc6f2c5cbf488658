import { createHmac, randomBytes } from 'node:crypto';
import {
  closeSync,
  fsyncSync,
  linkSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  statSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import { dirname, join } from 'node:path';
import type { ErrorCode } from '@quoll/client/wire';
import { ApiError } from '../errors/index.js';

/** The file under the home directory that holds the current master key. */
export const MASTER_KEY_FILE = 'master.key';
/** The key a rotation in progress re-seals rows under; promoted to `master.key` at its end. */
export const NEXT_KEY_FILE = 'master.key.next';
/** The key a finished rotation replaced; kept so rows sealed under it stay readable until retired. */
export const OLD_KEY_FILE = 'master.key.old';
/** The environment variable that, when set, supplies the master key instead of the key file. */
export const MASTER_KEY_ENV = 'QUOLL_MASTER_KEY';
/**
 * Further keys that open (never seal) values, separated by commas or white space: how every
 * node of a cluster holds both keys while a rotation is rolled out.
 */
export const DECRYPT_ONLY_KEYS_ENV = 'QUOLL_MASTER_KEY_DECRYPT_ONLY';

/** Length of an AES-256 key in bytes. */
const KEY_BYTES = 32;
const HEX_KEY = /^[0-9a-fA-F]{64}$/;
const BASE64_KEY = /^[A-Za-z0-9+/_-]+={0,2}$/;

/** A 32-byte master key and its id (a keyed hash of the key, safe to store beside ciphertext). */
export interface MasterKey {
  /** 16 hex characters derived from the key, so the same key always has the same id. */
  readonly id: string;
  readonly key: Buffer;
}

/** Catalogue codes of master-key errors. */
export type MasterKeyErrorCode = Extract<
  ErrorCode,
  | 'invalid_master_key'
  | 'master_key_mismatch'
  | 'master_key_retired'
  | 'master_key_unknown'
  | 'key_rotation_pending'
>;

/**
 * Why a master key could not be loaded or used, with a stable catalogue code; the message
 * names the source, the key ids and the fix, never a key.
 */
export class MasterKeyError extends ApiError {
  constructor(code: MasterKeyErrorCode, message: string, details?: Record<string, unknown>) {
    super(code, message, details);
    this.name = 'MasterKeyError';
  }
}

/** Where the master key comes from. */
export interface LoadMasterKeyOptions {
  /** The instance's home directory; `master.key` lives here. */
  home: string;
  /** The process environment; `QUOLL_MASTER_KEY` wins over the key file. */
  env: NodeJS.ProcessEnv;
}

/**
 * Loads the master key: `QUOLL_MASTER_KEY` (64 hex characters or base64 of 32 bytes) when
 * set, else `<home>/master.key`, created with mode 0600 at first start.
 *
 * An existing key file readable by group or others is refused (like ssh does with private
 * keys): a key anyone on the host can read protects nothing.
 * @example
 * const key = loadMasterKey({ home: config.home, env: process.env });
 */
export function loadMasterKey(options: LoadMasterKeyOptions): MasterKey {
  const fromEnv = options.env[MASTER_KEY_ENV];
  if (fromEnv !== undefined) return parseMasterKey(fromEnv, `the ${MASTER_KEY_ENV} environment variable`);
  const path = join(options.home, MASTER_KEY_FILE);
  const existing = readKeyFile(path);
  if (existing) return existing;
  mkdirSync(options.home, { recursive: true, mode: 0o700 });
  const key = generateMasterKey();
  if (!writeKeyFileExclusive(path, key)) {
    // Another process created it between our read and our write: use theirs.
    const winner = readKeyFile(path);
    if (winner) return winner;
  }
  return key;
}

/**
 * The decrypt-only keys of `QUOLL_MASTER_KEY_DECRYPT_ONLY` (commas or white space between
 * keys; empty when unset). Throws `MasterKeyError` (`invalid_master_key`) naming the entry.
 * @example
 * const extra = loadDecryptOnlyKeys(process.env); // [] unless a rotation is rolled out
 */
export function loadDecryptOnlyKeys(env: NodeJS.ProcessEnv): MasterKey[] {
  const text = env[DECRYPT_ONLY_KEYS_ENV];
  if (text === undefined) return [];
  return text
    .split(/[\s,]+/)
    .filter((entry) => entry !== '')
    .map((entry, i) => parseMasterKey(entry, `key ${i + 1} of ${DECRYPT_ONLY_KEYS_ENV}`));
}

/** A fresh random master key. */
export function generateMasterKey(): MasterKey {
  return keyFromBytes(randomBytes(KEY_BYTES));
}

/** The key id of raw key bytes: HMAC-SHA256(key, label), first 8 bytes in hex. */
export function masterKeyId(key: Buffer): string {
  return createHmac('sha256', key).update('quoll master key id v1').digest('hex').slice(0, 16);
}

/**
 * Parses a key given as 64 hex characters or as base64 (standard or URL-safe) of 32 bytes.
 * @param source where the text came from, named in the error.
 */
export function parseMasterKey(text: string, source: string): MasterKey {
  const trimmed = text.trim();
  let bytes: Buffer | undefined;
  if (HEX_KEY.test(trimmed)) bytes = Buffer.from(trimmed, 'hex');
  else if (BASE64_KEY.test(trimmed)) {
    const decoded = Buffer.from(trimmed.replace(/-/g, '+').replace(/_/g, '/'), 'base64');
    if (decoded.length === KEY_BYTES) bytes = decoded;
  }
  if (!bytes) {
    // Never echo the value: it is (meant to be) a secret.
    throw new MasterKeyError(
      'invalid_master_key',
      `The master key in ${source} is not a 32-byte key (got ${trimmed.length} characters): ` +
        'give 64 hex characters or 44 base64 characters, e.g. the output of `openssl rand -base64 32`.',
    );
  }
  return keyFromBytes(bytes);
}

/**
 * Reads a key file, or returns null when it does not exist.
 * Throws `MasterKeyError` when the file is readable by group/others or does not hold a key.
 */
export function readKeyFile(path: string): MasterKey | null {
  let mode: number;
  try {
    mode = statSync(path).mode;
  } catch (err) {
    if (isNotFound(err)) return null;
    throw err;
  }
  // POSIX permission bits mean nothing on Windows (always reported as 0o666).
  if (process.platform !== 'win32' && (mode & 0o077) !== 0) {
    throw new MasterKeyError(
      'invalid_master_key',
      `The master key file ${path} has mode ${(mode & 0o777).toString(8).padStart(4, '0')}; ` +
        `it must be readable by its owner only. Fix it with: chmod 600 ${path}`,
    );
  }
  return parseMasterKey(readFileSync(path, 'utf8'), `the key file ${path}`);
}

/**
 * Creates a key file with mode 0600, atomically and exclusively; returns false if it already exists.
 *
 * The key is written and fsynced under a temporary name, then hard-linked into place: a
 * reader never sees a half-written key, and of two racing writers exactly one wins.
 * Losing the file loses every connection, so it is durable before anything is sealed with it.
 */
export function writeKeyFileExclusive(path: string, key: MasterKey): boolean {
  const temp = writeTempKeyFile(path, key);
  try {
    linkSync(temp, path);
    return true;
  } catch (err) {
    if (typeof err === 'object' && err !== null && (err as { code?: unknown }).code === 'EEXIST')
      return false;
    throw err;
  } finally {
    unlinkSync(temp);
    fsyncDirectory(dirname(path));
  }
}

/**
 * Atomically replaces a key file: the key is written and fsynced under a temporary name, then
 * renamed over `path` (the caller makes the rename durable with {@link fsyncDirectory}).
 */
export function replaceKeyFile(path: string, key: MasterKey): void {
  renameSync(writeTempKeyFile(path, key), path);
}

/** Writes the key, fsynced, to a new mode-0600 file beside `path`; that file's path. */
function writeTempKeyFile(path: string, key: MasterKey): string {
  const temp = `${path}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  const fd = openSync(temp, 'wx', 0o600);
  try {
    writeSync(fd, `${key.key.toString('base64')}\n`);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  return temp;
}

/** Makes a rename or link in `dir` durable (best effort: some platforms cannot open directories). */
export function fsyncDirectory(dir: string): void {
  let fd: number | undefined;
  try {
    fd = openSync(dir, 'r');
    fsyncSync(fd);
  } catch {
    // Windows cannot fsync a directory; the rename itself is still atomic there.
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

function keyFromBytes(bytes: Buffer): MasterKey {
  return Object.freeze({ id: masterKeyId(bytes), key: bytes });
}

/** Whether an fs error is "no such file". */
export function isNotFound(err: unknown): boolean {
  return typeof err === 'object' && err !== null && (err as { code?: unknown }).code === 'ENOENT';
}
