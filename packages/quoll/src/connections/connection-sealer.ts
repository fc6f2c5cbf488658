import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { ApiError } from '../errors/index.js';
import type { ConnectionDetails, SealedDetails } from './connection-store.js';
import type { Keyring } from './keyring.js';

const FORMAT_V1 = 1;
const IV_BYTES = 12;
const TAG_BYTES = 16;
const HEADER_BYTES = 1 + IV_BYTES + TAG_BYTES;

/**
 * Seals connection details with AES-256-GCM under the keyring's current master key and
 * opens them under whichever key sealed them (by key id).
 *
 * Each value gets a fresh random 12-byte IV; the connection id is the additional
 * authenticated data, so a ciphertext copied onto another row does not open.
 * @example
 * const sealer = new ConnectionSealer(createKeyring({ home, env: process.env }));
 * const sealed = sealer.seal(id, { host: 'https://example.com/data.arrow' });
 * sealer.open(id, sealed); // { host: 'https://example.com/data.arrow' }
 */
export class ConnectionSealer {
  readonly #keyring: Keyring;

  constructor(keyring: Keyring) {
    this.#keyring = keyring;
  }

  /** The id of the key new values are sealed with. */
  currentKeyId(): string {
    return this.#keyring.current().id;
  }

  /** Encrypts the details of connection `connectionId`. */
  seal(connectionId: string, details: ConnectionDetails): SealedDetails {
    const { id, key } = this.#keyring.current();
    const iv = randomBytes(IV_BYTES);
    const cipher = createCipheriv('aes-256-gcm', key, iv, { authTagLength: TAG_BYTES });
    cipher.setAAD(additionalData(connectionId));
    const ciphertext = Buffer.concat([cipher.update(JSON.stringify(details), 'utf8'), cipher.final()]);
    const blob = Buffer.concat([Buffer.from([FORMAT_V1]), iv, cipher.getAuthTag(), ciphertext]);
    return { keyId: id, blob };
  }

  /**
   * Decrypts and parses the details of connection `connectionId`.
   * Throws `ApiError('internal_error')` when the key is unknown or the data was altered or
   * belongs to another row; the message never contains any part of the details.
   */
  open(connectionId: string, sealed: SealedDetails): ConnectionDetails {
    const master = this.#keyring.find(sealed.keyId);
    if (!master) {
      throw new ApiError(
        'internal_error',
        `The details of connection ${connectionId} are sealed with master key ${sealed.keyId}, which this server does not have. ` +
          'Start the server with the master.key (or QUOLL_MASTER_KEY) that sealed them.',
        { connectionId, keyId: sealed.keyId },
      );
    }
    const { blob } = sealed;
    if (blob.length < HEADER_BYTES || blob[0] !== FORMAT_V1) throw cannotOpen(connectionId, sealed.keyId);
    const iv = blob.subarray(1, 1 + IV_BYTES);
    const tag = blob.subarray(1 + IV_BYTES, HEADER_BYTES);
    let plaintext: string;
    try {
      const decipher = createDecipheriv('aes-256-gcm', master.key, iv, { authTagLength: TAG_BYTES });
      decipher.setAAD(additionalData(connectionId));
      decipher.setAuthTag(tag);
      plaintext = Buffer.concat([decipher.update(blob.subarray(HEADER_BYTES)), decipher.final()]).toString(
        'utf8',
      );
    } catch {
      // The crypto error says nothing useful and must not be passed on verbatim.
      throw cannotOpen(connectionId, sealed.keyId);
    }
    return JSON.parse(plaintext) as ConnectionDetails;
  }
}

function additionalData(connectionId: string): Buffer {
  return Buffer.from(`quoll:connection:v1:${connectionId}`, 'utf8');
}

function cannotOpen(connectionId: string, keyId: string): ApiError {
  return new ApiError(
    'internal_error',
    `The details of connection ${connectionId} fail authentication under master key ${keyId}: ` +
      'the stored data was altered or belongs to another row. Delete and re-create the connection.',
    { connectionId, keyId },
  );
}
