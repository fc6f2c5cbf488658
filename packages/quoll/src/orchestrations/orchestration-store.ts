import type { OrchestrationDto, OrchestrationStatus } from '@quoll/client/wire';

/**
 * An orchestration row as stored: the wire shape without the joined workspace name,
 * plus the hash of its installed dependency set (null when it has none or is not packaged).
 */
export interface OrchestrationRecord extends Omit<OrchestrationDto, 'workspaceName'> {
  depHash: string | null;
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
  updatedAt: string;
}

/** Where a packaging log line came from. */
export type PackagingLogSource = 'quoll' | 'npm' | 'esbuild';

/** One line of an orchestration's packaging log. */
export interface PackagingLogLine {
  /** RFC 3339 UTC. */
  time: string;
  source: PackagingLogSource;
  line: string;
}

/**
 * Storage port for orchestrations and their packaging logs. Backends (SQLite today) keep
 * the driver to themselves; every method is atomic on its own.
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
   * Atomically moves the oldest `pending_packaging` orchestration to `packaging` and returns
   * it, so two packaging workers never take the same one; null when none is pending.
   */
  claimOrchestrationForPackaging(at: string): Promise<OrchestrationRecord | null>;
  /**
   * Moves every `packaging` orchestration back to `pending_packaging` (work a stopped
   * server left unfinished) and returns how many moved.
   */
  requeueOrchestrationPackaging(at: string): Promise<number>;
  /** Appends lines, in order, to an orchestration's packaging log. */
  appendPackagingLog(orchestrationId: string, lines: readonly PackagingLogLine[]): Promise<void>;
  /** The whole packaging log, oldest line first. */
  getPackagingLog(orchestrationId: string): Promise<PackagingLogLine[]>;
}
