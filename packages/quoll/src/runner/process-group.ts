/**
 * Sends a signal to a whole process group (`-pid`); a group that is already gone is fine.
 * Returns whether the signal was delivered.
 */
export function signalGroup(pid: number, signal: NodeJS.Signals): boolean {
  try {
    process.kill(-pid, signal);
    return true;
  } catch {
    // ESRCH: the group has exited already.
    return false;
  }
}

/** Sends a signal to one process; a process that is already gone is fine. */
export function signalProcess(pid: number, signal: NodeJS.Signals): boolean {
  try {
    process.kill(pid, signal);
    return true;
  } catch {
    return false;
  }
}
