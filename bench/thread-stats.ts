import { existsSync, readdirSync, readFileSync } from 'node:fs';

/**
 * One thread's counters from /proc: CPU seconds, page faults, context switches, and the
 * scheduler's run and run-queue wait time.
 */
export interface ThreadStats {
  /** User CPU seconds. */
  user: number;
  /** System CPU seconds. */
  sys: number;
  /** Minor page faults. */
  minorFaults: number;
  /** Major page faults (a page read from disk). */
  majorFaults: number;
  /** Voluntary context switches: the thread slept and was woken. */
  wakes: number;
  /** Involuntary context switches: the thread was preempted while it could run (another task took its core). */
  preempted: number;
  /**
   * CPU seconds on the CPU to the nanosecond (`/proc/…/schedstat`), user and system together:
   * `user` and `sys` come in ticks of 10 ms, too coarse for a thread using ~15 ms a second.
   */
  run: number;
  /**
   * Seconds spent runnable but waiting on a run queue (`/proc/…/schedstat`'s second field): time
   * the thread could have run while another task held its core.
   */
  wait: number;
  /** Time slices run on a CPU (`/proc/…/schedstat`'s third field): every time it was put on a core. */
  slices: number;
  /**
   * Bytes of file pages this thread dirtied (`write_bytes` of `/proc/…/io`: what its writes give
   * the page cache to write back; 0 where the kernel keeps no per-thread I/O accounting).
   */
  writeBytes: number;
}

/**
 * Every thread of process `pid` (`'self'`: this one), by thread id, from `/proc/<pid>/task`: the
 * bench probes' per-thread CPU, faults and wakes (Node names every thread "node"; the request
 * thread's id is the process id). A thread that ends while it is read is left out.
 */
export function threadStats(pid: number | 'self'): Map<string, ThreadStats> {
  const out = new Map<string, ThreadStats>();
  const dir = `/proc/${pid}/task`;
  if (!existsSync(dir)) return out;
  for (const tid of readdirSync(dir)) {
    try {
      const stat = readFileSync(`${dir}/${tid}/stat`, 'utf8');
      // After the command name: state (0), …, minflt (7), majflt (9), utime (11), stime (12), in ticks of 1/100 s.
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      const status = readFileSync(`${dir}/${tid}/status`, 'utf8');
      const m = /^voluntary_ctxt_switches:\s+(\d+)/m.exec(status);
      const n = /^nonvoluntary_ctxt_switches:\s+(\d+)/m.exec(status);
      const sched = readFileSync(`${dir}/${tid}/schedstat`, 'utf8').split(' ');
      let writeBytes = 0;
      try {
        writeBytes = Number(
          /^write_bytes:\s+(\d+)/m.exec(readFileSync(`${dir}/${tid}/io`, 'utf8'))?.[1] ?? 0,
        );
      } catch {
        // No per-thread I/O accounting here (or no permission): leave it 0.
      }
      out.set(tid, {
        user: Number(f[11]) / 100,
        sys: Number(f[12]) / 100,
        minorFaults: Number(f[7]),
        majorFaults: Number(f[9]),
        wakes: Number(m?.[1] ?? 0),
        preempted: Number(n?.[1] ?? 0),
        run: Number(sched[0]) / 1e9,
        wait: Number(sched[1]) / 1e9,
        slices: Number(sched[2]),
        writeBytes,
      });
    } catch {
      // The thread ended meanwhile.
    }
  }
  return out;
}
