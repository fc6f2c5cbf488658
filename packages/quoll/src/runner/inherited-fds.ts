import { openSync, readdirSync, readFileSync } from 'node:fs';
import type { IOType } from 'node:child_process';

/** `O_CLOEXEC` in the `flags:` of /proc/<pid>/fdinfo (octal, as Linux prints them). */
const O_CLOEXEC = 0o2000000;

/**
 * The descriptors (3 and up) of this process that a child would inherit: those without
 * close-on-exec. Node opens every descriptor of its own close-on-exec, so these are the ones
 * whoever started the server left open (`exec 200<>file`, `flock 200`, a supervisor's
 * socket). Linux (/proc/self/fdinfo); elsewhere none are known.
 */
export function inheritableDescriptors(): number[] {
  let names: string[];
  try {
    names = readdirSync('/proc/self/fdinfo');
  } catch {
    return [];
  }
  const fds: number[] = [];
  for (const name of names) {
    const fd = Number(name);
    if (!Number.isInteger(fd) || fd < 3) continue;
    let info: string;
    try {
      info = readFileSync(`/proc/self/fdinfo/${name}`, 'utf8');
    } catch {
      continue; // Closed meanwhile (the listing's own descriptor, for one).
    }
    const flags = /^flags:\s*([0-7]+)/m.exec(info)?.[1];
    if (flags !== undefined && (parseInt(flags, 8) & O_CLOEXEC) === 0) fds.push(fd);
  }
  return fds.sort((a, b) => a - b);
}

let known: number[] | null = null;
let devNull: number | null = null;

/**
 * `stdio` for a child that must not reach what the server inherited: `stdio` itself, then
 * /dev/null in place of every inheritable descriptor it does not name. Node cannot close a
 * descriptor in the child (or mark one close-on-exec in the server), but it can put another
 * in its place: the child (a run, an install, bwrap and everything in the sandbox) finds
 * /dev/null at that number, never the server's file, socket or lock. The server keeps its
 * own (a lock it holds stays held). Inherited descriptors are read once per process: they
 * are there from the start, and Node adds none.
 */
export function stdioWithoutInherited(stdio: readonly (IOType | number)[]): (IOType | number)[] {
  known ??= inheritableDescriptors();
  const inherited = known.filter((fd) => fd >= stdio.length);
  if (inherited.length === 0) return [...stdio];
  devNull ??= openSync('/dev/null', 'r+');
  const out = [...stdio];
  const last = inherited[inherited.length - 1] as number;
  for (let fd = stdio.length; fd <= last; fd++) out.push(inherited.includes(fd) ? devNull : 'ignore');
  return out;
}
