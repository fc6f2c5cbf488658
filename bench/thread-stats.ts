import { existsSync, readdirSync, readFileSync } from 'node:fs';

/** One thread's counters from /proc: CPU seconds, minor page faults, voluntary context switches. */
export interface ThreadStats {
  /** User CPU seconds. */
  user: number;
  /** System CPU seconds. */
  sys: number;
  /** Minor page faults. */
  minorFaults: number;
  /** Voluntary context switches: the thread slept and was woken. */
  wakes: number;
  /**
   * CPU seconds on the CPU to the nanosecond (`/proc/…/schedstat`), user and system together:
   * `user` and `sys` come in ticks of 10 ms, too coarse for a thread using ~15 ms a second.
   */
  run: number;
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
      // After the command name: state (0), …, minflt (7), …, utime (11), stime (12), in ticks of 1/100 s.
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      const m = /^voluntary_ctxt_switches:\s+(\d+)/m.exec(readFileSync(`${dir}/${tid}/status`, 'utf8'));
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
        wakes: Number(m?.[1] ?? 0),
        run: Number(sched[0]) / 1e9,
        writeBytes,
      });
    } catch {
      // The thread ended meanwhile.
    }
  }
  return out;
}
