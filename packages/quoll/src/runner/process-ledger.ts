import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** One process group (or sandbox) a launcher started, as written in the ledger. */
export interface LedgerEntry {
  /** Host pid of the group's leader (a run's process, bwrap, or a sandbox's init). */
  pid: number;
  /** The leader's start time in clock ticks since boot (`/proc/<pid>/stat` field 22). */
  startTime: number;
  /** `/proc/sys/kernel/random/boot_id` when it started: after a reboot every entry is void. */
  bootId: string;
  /** What it was started for (its run or build directory), for the log. */
  dir: string;
}

/** What {@link ProcessLedger.stopLeftovers} found and stopped. */
export interface LeftoverReport {
  /** Entries whose group still had live processes, which were killed. */
  stopped: LedgerEntry[];
  /** Processes killed over all of them. */
  processes: number;
}

/** Notes the process groups launchers start, so what a killed server left can be found. */
export interface ProcessRecorder {
  /** Notes the group led by `pid` (started for `dir`). */
  record(pid: number, dir: string): void;
  /** Forgets it (it has ended and its group was killed). */
  forget(pid: number): void;
}

/** How long {@link ProcessLedger.stopLeftovers} waits for killed processes to go. */
const STOP_WAIT_MS = 5_000;

/**
 * The process groups and sandboxes this server's launchers started — every run, warm process
 * and install — one small file each under `<home>/processes/`, written when the process
 * starts and removed when it has ended. A server that is SIGKILLed (or loses power) leaves its
 * entries behind; the next server on the home calls {@link ProcessLedger.stopLeftovers} before
 * it re-queues any work, and kills what is still alive of them: a group is recognised by its
 * leader's pid **and** start time (or, once the leader is gone, by members of its group that
 * started after it), never by pid alone, so a reused pid is left alone.
 *
 * Linux only (it reads `/proc`); elsewhere nothing is recorded.
 *
 * @example
 *   const ledger = new ProcessLedger(join(home, 'processes'));
 *   const { processes } = await ledger.stopLeftovers();
 *   const launcher = new DirectLauncher({ recorder: ledger });
 */
export class ProcessLedger implements ProcessRecorder {
  private readonly enabled: boolean;
  private readonly bootId: string;
  private ready = false;

  constructor(
    private readonly dir: string,
    options: { platform?: NodeJS.Platform } = {},
  ) {
    this.enabled = (options.platform ?? process.platform) === 'linux';
    this.bootId = this.enabled ? readBootId() : '';
  }

  record(pid: number, dir: string): void {
    if (!this.enabled) return;
    const startTime = processStartTime(pid);
    // Already gone and reaped: nothing to find later.
    if (startTime === null) return;
    if (!this.ready) {
      mkdirSync(this.dir, { recursive: true, mode: 0o700 });
      this.ready = true;
    }
    const entry: LedgerEntry = { pid, startTime, bootId: this.bootId, dir };
    // Synchronous, so a server killed right after a launch has already written it.
    writeFileSync(join(this.dir, `${pid}.json`), JSON.stringify(entry));
  }

  forget(pid: number): void {
    if (!this.enabled) return;
    rmSync(join(this.dir, `${pid}.json`), { force: true });
  }

  /**
   * Kills every process of the groups a previous server on this home left (SIGKILL: they
   * belong to no one now) and waits until they are gone; then clears the ledger.
   */
  async stopLeftovers(): Promise<LeftoverReport> {
    const report: LeftoverReport = { stopped: [], processes: 0 };
    if (!this.enabled) return report;
    let names: string[];
    try {
      names = readdirSync(this.dir).filter((n) => n.endsWith('.json'));
    } catch {
      return report;
    }
    const entries: LedgerEntry[] = [];
    for (const name of names) {
      const entry = readEntry(join(this.dir, name));
      if (entry !== null && entry.bootId === this.bootId) entries.push(entry);
    }
    const deadline = Date.now() + STOP_WAIT_MS;
    for (const entry of entries) {
      const members = groupMembers(entry);
      if (members.length === 0) continue;
      report.stopped.push(entry);
      report.processes += members.length;
      for (;;) {
        // The group by its id (all at once), then each member found (a leader's own pid).
        signal(-entry.pid);
        for (const pid of members) signal(pid);
        if (groupMembers(entry).length === 0 || Date.now() > deadline) break;
        await new Promise((r) => setTimeout(r, 20));
      }
    }
    for (const name of names) rmSync(join(this.dir, name), { force: true });
    return report;
  }
}

/**
 * Live processes of the group an entry names: its leader if it is still the same process,
 * and every process in its group that started no earlier than it (a pid is not reused while
 * a group of that id has members, so those are its own). Zombies count as gone.
 */
function groupMembers(entry: LedgerEntry): number[] {
  const found: number[] = [];
  const leader = readStat(entry.pid);
  // The pid belongs to a newer process: the group it led had ended entirely (a pid is not
  // reused while a group of that id has members), and the new one's group is not ours.
  if (leader !== null && leader.startTime !== entry.startTime) return found;
  let names: string[];
  try {
    names = readdirSync('/proc');
  } catch {
    return found;
  }
  for (const name of names) {
    if (!/^\d+$/.test(name)) continue;
    const stat = readStat(Number(name));
    if (stat === null || stat.state === 'Z') continue;
    const pid = Number(name);
    if (
      pid === entry.pid
        ? stat.startTime === entry.startTime
        : stat.pgrp === entry.pid && stat.startTime >= entry.startTime
    )
      found.push(pid);
  }
  return found;
}

interface ProcStat {
  state: string;
  pgrp: number;
  startTime: number;
}

/** Fields of `/proc/<pid>/stat` (after the command name, which may hold spaces and parentheses). */
function readStat(pid: number): ProcStat | null {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return null;
  }
  // Fields from 3 on: state, ppid, pgrp, session, tty_nr, tpgid, flags, minflt, cminflt,
  // majflt, cmajflt, utime, stime, cutime, cstime, priority, nice, num_threads, itrealvalue, starttime.
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  const startTime = Number(fields[19]);
  const pgrp = Number(fields[2]);
  if (!Number.isSafeInteger(startTime) || !Number.isSafeInteger(pgrp)) return null;
  return { state: fields[0] ?? '', pgrp, startTime };
}

function processStartTime(pid: number): number | null {
  return readStat(pid)?.startTime ?? null;
}

function readBootId(): string {
  try {
    return readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
  } catch {
    return '';
  }
}

function readEntry(path: string): LedgerEntry | null {
  try {
    const raw = JSON.parse(readFileSync(path, 'utf8')) as Partial<LedgerEntry>;
    if (
      typeof raw.pid !== 'number' ||
      !Number.isSafeInteger(raw.pid) ||
      raw.pid <= 1 ||
      typeof raw.startTime !== 'number' ||
      typeof raw.bootId !== 'string'
    )
      return null;
    return { pid: raw.pid, startTime: raw.startTime, bootId: raw.bootId, dir: String(raw.dir ?? '') };
  } catch {
    return null;
  }
}

/** SIGKILL to a pid or (negative) a group; one that is gone already is fine. */
function signal(target: number): void {
  try {
    process.kill(target, 'SIGKILL');
  } catch {
    // ESRCH: gone.
  }
}
