import type { ConnectionStore, SealedConnectionRecord, SealedDetails } from './connection-store.js';

/**
 * Re-seals, one row per statement, every connection not sealed under `newKeyId` — the loop of
 * both rotations (an embedded home's and a cluster's): lists such rows in batches, re-reads each
 * (one deleted or already re-sealed since it was listed is skipped), seals its details again with
 * `reseal`, and writes them with compare and set on the key id it was read under, so a row that
 * changed meanwhile is never overwritten (the next listing retries it). `reseal` may throw to stop
 * (it is told how many rows were re-sealed so far); `onResealed` runs after each row written.
 * Resolves with the number of rows this call re-sealed.
 */
export async function resealConnections(
  store: ConnectionStore,
  newKeyId: string,
  batchSize: number,
  reseal: (row: SealedConnectionRecord, resealedSoFar: number) => SealedDetails,
  onResealed: (connectionId: string, oldKeyId: string) => void | Promise<void>,
): Promise<number> {
  let count = 0;
  for (;;) {
    const ids = await store.listIdsNotSealedWith(newKeyId, batchSize);
    if (ids.length === 0) return count;
    for (const id of ids) {
      const row = await store.getSealed(id);
      if (!row || row.sealed.keyId === newKeyId) continue;
      const oldKeyId = row.sealed.keyId;
      if (await store.replaceSealed(id, oldKeyId, reseal(row, count))) {
        count += 1;
        await onResealed(id, oldKeyId);
      }
    }
  }
}
