import type { OrchestrationDto, OrchestrationStatus } from '@quoll/client/wire';

/**
 * An orchestration row as stored: the wire shape without the joined workspace name,
 * plus the hash of its installed dependency set (null when it has none or is not packaged).
 */
export interface OrchestrationRecord extends Omit<OrchestrationDto, 'workspaceName'> {
  depHash: string | null;
  /**
   * SHA-256 of the packaged output's archive in a cluster's shared blob storage (the files as
   * built and their dependency environment), which other nodes unpack instead of building;
   * null when there is none (an embedded home).
   */
  packageSha: string | null;
}

/** What is recorded for a newly accepted upload. */
export interface NewOrchestration {
  id: string;
  workspaceId: number;
  /** May be empty: the seed allows unnamed orchestrations. */
  name: string;
  fileName: string;
  /** SHA-256 (hex) of the uploaded zip. */
  sha: string;
  /** The entrypoint found when the upload was inspected. */
  entrypoint: string | null;
  createdAt: string;
}

/** Fields a status change may set alongside the status. */
export interface OrchestrationStatusUpdate {
  /** Why packaging failed; cleared (null) when omitted. */
  error?: string | null;
  /** Kept as is when omitted. */
  entrypoint?: string | null;
  /** Kept as is when omitted. */
  depHash?: string | null;
  /** Kept as is when omitted. */
  packageSha?: string | null;
  updatedAt: string;
}

/** A packager asking for work (see {@link OrchestrationStore.claimOrchestrationForPackaging}). */
export interface PackagingClaim {
  /** Who packages: stable across restarts of the same node, unique among nodes. */
  owner: string;
  /** Now, RFC 3339 (the row's `updatedAt`). */
  at: string;
  /**
   * How long the lease lasts from now, in ms. "Now" is the store's clock (on PostgreSQL the
   * database's), never the claimer's: leases are stamped and compared by one clock, so a node
   * whose clock runs ahead cannot take over a job whose lease is still running.
   */
  leaseMs: number;
}

/** Where a packaging log line came from. */
export type PackagingLogSource = 'quoll' | 'npm' | 'esbuild' | 'pip';

/** One line of an orchestration's packaging log. */
export interface PackagingLogLine {
  /** RFC 3339 UTC. */
  time: string;
  source: PackagingLogSource;
  line: string;
}

/**
 * Storage port for orchestrations and their packaging logs. Backends keep the driver to
 * themselves; every method is atomic on its own and safe with several writers.
 */
export interface OrchestrationStore {
  /** Inserts an orchestration in `pending_packaging`. */
  createOrchestration(input: NewOrchestration): Promise<OrchestrationRecord>;
  getOrchestration(id: string): Promise<OrchestrationRecord | null>;
  /** Orchestrations oldest first, all of them or those of one workspace. */
  listOrchestrations(filter?: { workspaceId?: number }): Promise<OrchestrationRecord[]>;
  /** Orchestrations in any of the given states, oldest first. */
  listOrchestrationsByStatus(statuses: readonly OrchestrationStatus[]): Promise<OrchestrationRecord[]>;
  /** Sets the status (and the given fields); null when the id is unknown. */
  setOrchestrationStatus(
    id: string,
    status: OrchestrationStatus,
    update: OrchestrationStatusUpdate,
  ): Promise<OrchestrationRecord | null>;
  /**
   * Atomically takes the oldest orchestration that needs packaging — `pending_packaging`, or
   * `packaging` under a lease that expired (its packager died) — moves it to `packaging` and
   * leases it to `claim.owner` for `claim.leaseMs` (expiry and lease both by the store's clock). Two packagers, in one
   * process or on two nodes, never hold the same one; null when none is waiting.
   */
  claimOrchestrationForPackaging(claim: PackagingClaim): Promise<OrchestrationRecord | null>;
  /**
   * Extends the lease of an orchestration `owner` is packaging to `leaseMs` from now (the
   * store's clock); false when the owner no longer holds it (the lease expired and another
   * packager took it, or it was requeued).
   */
  renewPackagingLease(id: string, owner: string, leaseMs: number): Promise<boolean>;
  /**
   * Moves back to `pending_packaging` every `packaging` orchestration leased to `owner` (work
   * an earlier life of the same packager left unfinished) and returns how many moved. Others'
   * work is left alone: it is taken over only once its lease expires.
   */
  requeueOrchestrationPackaging(owner: string, at: string): Promise<number>;
  /**
   * Appends lines, in order and after every line already there, to an orchestration's
   * packaging log (concurrent appends never interleave inside one call's lines).
   */
  appendPackagingLog(orchestrationId: string, lines: readonly PackagingLogLine[]): Promise<void>;
  /** The whole packaging log, oldest line first. */
  getPackagingLog(orchestrationId: string): Promise<PackagingLogLine[]>;
}
