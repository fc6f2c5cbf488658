import { closeSync, openSync, readFileSync, readSync, readdirSync, statSync } from 'node:fs';
import {
  PerformanceObserver,
  constants,
  type NodeGCPerformanceDetail,
  type PerformanceEntry,
} from 'node:perf_hooks';
import { getHeapSpaceStatistics, getHeapStatistics } from 'node:v8';
import { EventLoopLag } from './event-loop-lag.js';
import { bucketPrefixes, escapeLabel, header, histogramText } from './prometheus-text.js';

/** When this process started (seconds since the epoch), as prom-client computes it. */
const START_TIME_SECONDS = Math.round(Date.now() / 1000 - process.uptime());

/** prom-client's GC duration buckets (seconds). */
const GC_BUCKETS = [0.001, 0.01, 0.1, 1, 2, 5];
const GC = 'nodejs_gc_duration_seconds';
const GC_PREFIXES = bucketPrefixes(GC, GC_BUCKETS);
/** GC kinds by Node's constant, as prom-client names them. */
const GC_KINDS = new Map<number, string>([
  [constants.NODE_PERFORMANCE_GC_MAJOR, 'major'],
  [constants.NODE_PERFORMANCE_GC_MINOR, 'minor'],
  [constants.NODE_PERFORMANCE_GC_INCREMENTAL, 'incremental'],
  [constants.NODE_PERFORMANCE_GC_WEAKCB, 'weakcb'],
]);

/**
 * The families' `# HELP`/`# TYPE` lines: names, help texts and types of prom-client's default
 * collectors (15.1.3) word for word, so dashboards and alerts built on them keep working.
 */
const H = {
  cpuUser: header('process_cpu_user_seconds_total', 'counter', 'Total user CPU time spent in seconds.'),
  cpuSystem: header('process_cpu_system_seconds_total', 'counter', 'Total system CPU time spent in seconds.'),
  cpu: header('process_cpu_seconds_total', 'counter', 'Total user and system CPU time spent in seconds.'),
  resident: header('process_resident_memory_bytes', 'gauge', 'Resident memory size in bytes.'),
  virtual: header('process_virtual_memory_bytes', 'gauge', 'Virtual memory size in bytes.'),
  heap: header('process_heap_bytes', 'gauge', 'Process heap size in bytes.'),
  openFds: header('process_open_fds', 'gauge', 'Number of open file descriptors.'),
  maxFds: header('process_max_fds', 'gauge', 'Maximum number of open file descriptors.'),
  resources: header(
    'nodejs_active_resources',
    'gauge',
    'Number of active resources that are currently keeping the event loop alive, grouped by async resource type.',
  ),
  resourcesTotal: header('nodejs_active_resources_total', 'gauge', 'Total number of active resources.'),
  handles: header(
    'nodejs_active_handles',
    'gauge',
    'Number of active libuv handles grouped by handle type. Every handle type is C++ class name.',
  ),
  handlesTotal: header('nodejs_active_handles_total', 'gauge', 'Total number of active handles.'),
  requests: header(
    'nodejs_active_requests',
    'gauge',
    'Number of active libuv requests grouped by request type. Every request type is C++ class name.',
  ),
  requestsTotal: header('nodejs_active_requests_total', 'gauge', 'Total number of active requests.'),
  heapTotal: header('nodejs_heap_size_total_bytes', 'gauge', 'Process heap size from Node.js in bytes.'),
  heapUsed: header('nodejs_heap_size_used_bytes', 'gauge', 'Process heap size used from Node.js in bytes.'),
  external: header('nodejs_external_memory_bytes', 'gauge', 'Node.js external memory size in bytes.'),
  spaceTotal: header(
    'nodejs_heap_space_size_total_bytes',
    'gauge',
    'Process heap space size total from Node.js in bytes.',
  ),
  spaceUsed: header(
    'nodejs_heap_space_size_used_bytes',
    'gauge',
    'Process heap space size used from Node.js in bytes.',
  ),
  spaceAvailable: header(
    'nodejs_heap_space_size_available_bytes',
    'gauge',
    'Process heap space size available from Node.js in bytes.',
  ),
  gc: header(
    GC,
    'histogram',
    'Garbage collection duration by kind, one of major, minor, incremental or weakcb.',
  ),
};

/** What never changes while the process runs: start time and Node's version. */
const CONSTANT_TEXT = (() => {
  const [major, minor, patch] = process.version.slice(1).split('.').map(Number);
  return (
    header('process_start_time_seconds', 'gauge', 'Start time of the process since unix epoch in seconds.') +
    `process_start_time_seconds ${START_TIME_SECONDS}\n` +
    header('nodejs_version_info', 'gauge', 'Node.js version info.') +
    `nodejs_version_info{version="${escapeLabel(process.version)}",major="${major}",minor="${minor}",patch="${patch}"} 1\n`
  );
})();

/** `/proc/self/status` lines read at each scrape (their values are in kB). */
const VM_SIZE = Buffer.from('\nVmSize:');
const VM_RSS = Buffer.from('\nVmRSS:');
const VM_DATA = Buffer.from('\nVmData:');

/** The kB number after `key` in `buf` (up to `end`), in bytes; NaN when the line is not there. */
function statusBytes(buf: Buffer, end: number, key: Buffer): number {
  let i = buf.indexOf(key);
  if (i < 0 || i >= end) return NaN;
  i += key.length;
  while (i < end && (buf[i] === 0x20 || buf[i] === 0x09)) i++;
  let kb = 0;
  let digits = 0;
  for (; i < end; i++, digits++) {
    const d = buf[i]! - 0x30;
    if (d < 0 || d > 9) break;
    kb = kb * 10 + d;
  }
  return digits === 0 ? NaN : kb * 1024;
}

/** Process `/proc/self/limits`' "Max open files" soft limit, or null (not Linux, or unreadable). */
function readMaxFds(): number | null {
  try {
    for (const line of readFileSync('/proc/self/limits', 'utf8').split('\n')) {
      if (line.startsWith('Max open files')) {
        const n = Number(line.split(/ {2,}/)[1]);
        return Number.isFinite(n) ? n : null;
      }
    }
  } catch {
    // not Linux
  }
  return null;
}

/** Counts of the items of `list` by their constructor's name (prom-client's grouping). */
function countByConstructor(list: readonly unknown[], into: Map<string, number>): void {
  into.clear();
  for (const item of list) {
    const name = (item as { constructor?: { name?: string } } | null)?.constructor?.name;
    if (name !== undefined) into.set(name, (into.get(name) ?? 0) + 1);
  }
}

/** `name{type="…"} n` per entry of `counts`. */
function byType(name: string, counts: Map<string, number>): string {
  let text = '';
  for (const [type, n] of counts) text += `${name}{type="${escapeLabel(type)}"} ${n}\n`;
  return text;
}

/** Node's undocumented handle and request lists (prom-client reads them too), when present. */
const internals = process as unknown as {
  _getActiveHandles?: () => unknown[];
  _getActiveRequests?: () => unknown[];
};

/** One GC kind's durations. */
interface GcSeries {
  labels: string;
  buckets: Float64Array;
  sum: number;
  count: number;
}

/**
 * prom-client's default process metrics (`collectDefaultMetrics`: same family names, help,
 * types, labels and meaning), written as Prometheus text by this code at each scrape instead of
 * by prom-client's collectors, for a fraction of their CPU and garbage.
 *
 * Per scrape: one read of `/proc/self/status` into a buffer kept for it (resident, virtual and
 * data size; prom-client read it as a string and split it into lines), one `stat` of
 * `/proc/self/fd`, whose size Linux (6.2 and later) reports as the number of open descriptors
 * (prom-client listed the folder: 20–40 µs and an array of names; a kernel whose size says 0
 * is listed as before), `process.cpuUsage()`, V8's heap and heap-space statistics (prom-client
 * called `process.memoryUsage()`, which reads `/proc/self/stat` again for a resident size it
 * did not use), and Node's lists of active resources, handles and requests. Start time, Node's
 * version, the descriptor limit and every family's help and type lines are built once.
 *
 * Counted from {@link start} on (by the first scrape): GC durations (every GC Node reports;
 * prom-client counted the first entry of each batch the observer delivered) and the event-loop
 * lag ({@link EventLoopLag}). The CPU counters are the process's total since it started
 * (prom-client's counted from its collector's start, i.e. the first scrape here).
 */
export class ProcessMetrics {
  readonly #lagResolutionMs: number;
  #lag: EventLoopLag | null = null;
  #observer: PerformanceObserver | null = null;
  #closed = false;
  readonly #gc = new Map<string, GcSeries>();
  /** Set at the first scrape: the descriptor limit's text (none when unknown). */
  #maxFdsText: string | null = null;
  readonly #status = Buffer.alloc(4096);
  readonly #counts = new Map<string, number>();
  /** Heap-space label text by V8's space name (`new_space` → `{space="new"}`). */
  readonly #spaceLabels = new Map<string, string>();

  constructor(lagResolutionMs: number) {
    this.#lagResolutionMs = lagResolutionMs;
  }

  /** Starts the GC observer and the event-loop lag timer (once; never after {@link close}). */
  start(): void {
    if (this.#closed || this.#lag !== null) return;
    this.#lag = new EventLoopLag(this.#lagResolutionMs);
    this.#observer = new PerformanceObserver((list) => {
      for (const entry of list.getEntries()) this.#gcObserved(entry);
    });
    this.#observer.observe({ entryTypes: ['gc'] });
  }

  /** Stops the timer and the observer; a later {@link text} still answers, their figures as they were. */
  close(): void {
    this.#closed = true;
    this.#lag?.stop();
    this.#observer?.disconnect();
    this.#observer = null;
  }

  #gcObserved(entry: PerformanceEntry): void {
    const detail = (entry as PerformanceEntry & { detail?: NodeGCPerformanceDetail }).detail;
    const kind = GC_KINDS.get(detail?.kind ?? -1);
    if (kind === undefined) return;
    let series = this.#gc.get(kind);
    if (series === undefined) {
      series = {
        labels: `kind="${kind}"`,
        buckets: new Float64Array(GC_BUCKETS.length + 1),
        sum: 0,
        count: 0,
      };
      this.#gc.set(kind, series);
    }
    const seconds = entry.duration / 1000;
    let i = 0;
    while (i < GC_BUCKETS.length && seconds > GC_BUCKETS[i]!) i++;
    series.buckets[i]! += 1;
    series.sum += seconds;
    series.count += 1;
  }

  /** Every family's text, values read now. */
  text(): string {
    this.#maxFdsText ??= ((max) => (max === null ? '' : `${H.maxFds}process_max_fds ${max}\n`))(readMaxFds());
    const cpu = process.cpuUsage();
    let text =
      `${H.cpuUser}process_cpu_user_seconds_total ${cpu.user / 1e6}\n` +
      `${H.cpuSystem}process_cpu_system_seconds_total ${cpu.system / 1e6}\n` +
      `${H.cpu}process_cpu_seconds_total ${(cpu.user + cpu.system) / 1e6}\n` +
      CONSTANT_TEXT +
      this.#memoryText() +
      this.#openFdsText() +
      this.#maxFdsText;

    const resources = process.getActiveResourcesInfo();
    this.#counts.clear();
    for (const r of resources) this.#counts.set(r, (this.#counts.get(r) ?? 0) + 1);
    text +=
      H.resources +
      byType('nodejs_active_resources', this.#counts) +
      `${H.resourcesTotal}nodejs_active_resources_total ${resources.length}\n`;
    const handles = internals._getActiveHandles?.();
    if (handles !== undefined) {
      countByConstructor(handles, this.#counts);
      text +=
        H.handles +
        byType('nodejs_active_handles', this.#counts) +
        `${H.handlesTotal}nodejs_active_handles_total ${handles.length}\n`;
    }
    const requests = internals._getActiveRequests?.();
    if (requests !== undefined) {
      countByConstructor(requests, this.#counts);
      text +=
        H.requests +
        byType('nodejs_active_requests', this.#counts) +
        `${H.requestsTotal}nodejs_active_requests_total ${requests.length}\n`;
    }
    this.#counts.clear();

    const heap = getHeapStatistics();
    text +=
      `${H.heapTotal}nodejs_heap_size_total_bytes ${heap.total_heap_size}\n` +
      `${H.heapUsed}nodejs_heap_size_used_bytes ${heap.used_heap_size}\n` +
      `${H.external}nodejs_external_memory_bytes ${heap.external_memory}\n`;
    let total = H.spaceTotal;
    let used = H.spaceUsed;
    let available = H.spaceAvailable;
    for (const space of getHeapSpaceStatistics()) {
      let labels = this.#spaceLabels.get(space.space_name);
      if (labels === undefined) {
        const name = space.space_name.slice(0, space.space_name.indexOf('_space'));
        labels = `{space="${escapeLabel(name)}"} `;
        this.#spaceLabels.set(space.space_name, labels);
      }
      total += `nodejs_heap_space_size_total_bytes${labels}${space.space_size}\n`;
      used += `nodejs_heap_space_size_used_bytes${labels}${space.space_used_size}\n`;
      available += `nodejs_heap_space_size_available_bytes${labels}${space.space_available_size}\n`;
    }
    text += total + used + available + H.gc;
    for (const s of this.#gc.values())
      text += histogramText(GC, GC_PREFIXES, s.buckets, s.sum, s.count, s.labels);
    return this.#lag === null ? text : text + this.#lag.text();
  }

  /** Resident, virtual and data size from one read of `/proc/self/status`; elsewhere Node's resident size. */
  #memoryText(): string {
    let end = 0;
    try {
      const fd = openSync('/proc/self/status', 'r');
      try {
        end = readSync(fd, this.#status, 0, this.#status.length, 0);
      } finally {
        closeSync(fd);
      }
    } catch {
      // not Linux: Node's resident size alone, as prom-client reports there
      return `${H.resident}process_resident_memory_bytes ${process.memoryUsage.rss()}\n`;
    }
    const b = this.#status;
    const line = (h: string, name: string, key: Buffer): string => {
      const v = statusBytes(b, end, key);
      return Number.isNaN(v) ? h : `${h}${name} ${v}\n`;
    };
    return (
      line(H.resident, 'process_resident_memory_bytes', VM_RSS) +
      line(H.virtual, 'process_virtual_memory_bytes', VM_SIZE) +
      line(H.heap, 'process_heap_bytes', VM_DATA)
    );
  }

  /** Open descriptors: the size Linux gives `/proc/self/fd` (6.2+), else its entries counted. */
  #openFdsText(): string {
    let n: number;
    try {
      n = statSync('/proc/self/fd').size;
      // The listing's own descriptor is closed again by the time it returns.
      if (n <= 0) n = readdirSync('/proc/self/fd').length - 1;
    } catch {
      return '';
    }
    return `${H.openFds}process_open_fds ${n}\n`;
  }
}
