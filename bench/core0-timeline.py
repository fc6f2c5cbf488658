# Per-second timeline of the bench's Quoll servers (logvar lane, 6 December): core 0 and 1 ticks
# (user, system, idle, iowait, softirq, steal), pages written (vmstat nr_written), Dirty (kB); per
# server (found by 'cli/main.js server' in its command line): its log's size / segment count,
# minor faults and RSS (MiB), and each thread's CPU ticks (thread id - pid : ticks); then kernel
# threads that used CPU (name@core:ticks). Run beside a bench on wrk's core:
#   taskset -c 1 python3 bench/core0-timeline.py > /tmp/timeline.txt &
import os, time, re, sys
def rd(p):
    try:
        with open(p) as f: return f.read()
    except Exception: return None
def stat_fields(p):
    s = rd(p)
    if not s: return None
    name = s[s.index('(')+1:s.rindex(')')]
    f = s[s.rindex(')')+2:].split()
    return name, int(f[11])+int(f[12]), int(f[36])  # utime+stime, processor
def cpu_lines():
    out = {}
    for l in rd('/proc/stat').splitlines():
        if l.startswith('cpu0 ') or l.startswith('cpu1 '):
            v = list(map(int, l.split()[1:9])); out[l[:4]] = v
    return out
def servers():
    res = {}
    for pid in os.listdir('/proc'):
        if not pid.isdigit(): continue
        c = rd(f'/proc/{pid}/cmdline')
        if c and 'cli/main.js\0server' in c:
            parts = c.split('\0'); home = parts[parts.index('--home')+1] if '--home' in parts else '?'
            res[int(pid)] = os.path.basename(home) + ('(off)' if 'no-inference-logs' in c else '')
    return res
def kthreads():
    out = {}
    for pid in os.listdir('/proc'):
        if not pid.isdigit(): continue
        s = rd(f'/proc/{pid}/stat')
        if not s: continue
        f = s[s.rindex(')')+2:].split()
        if f[1] != '2' and pid != '2': continue
        out[int(pid)] = (s[s.index('(')+1:s.rindex(')')], int(f[11])+int(f[12]), int(f[36]))
    return out
prev_cpu = cpu_lines(); prev_thr = {}; prev_k = kthreads()
def vm():
    d = dict(l.split()[:2] for l in rd('/proc/vmstat').splitlines()); return int(d['nr_written'])
prev_w = vm()
while True:
    time.sleep(1)
    cl = cpu_lines(); line = time.strftime('%H:%M:%S', time.gmtime())
    for k in ('cpu0','cpu1'):
        d = [a-b for a,b in zip(cl[k], prev_cpu[k])]
        line += f' {k[-1]}:u{d[0]} s{d[2]} id{d[3]} io{d[4]} si{d[6]} st{d[7]}'
    prev_cpu = cl
    w = vm(); line += f' wr{w-prev_w}'; prev_w = w
    mi = rd('/proc/meminfo'); line += ' D' + re.search(r'^Dirty:\s+(\d+)', mi, re.M).group(1)
    for pid, tag in sorted(servers().items()):
        line += f' | {tag}'
        try:
            c = rd(f'/proc/{pid}/cmdline').split('\0'); home = c[c.index('--home')+1]
            tot = 0; nseg = 0
            for root, ds, fs in os.walk(os.path.join(home, 'inference-logs')):
                for f in fs:
                    tot += os.path.getsize(os.path.join(root, f)); nseg += f.endswith('.arrows')
            line += f' [{tot>>20}M/{nseg}]'
            pf = rd(f'/proc/{pid}/stat'); pf = pf[pf.rindex(')')+2:].split(); mf = int(pf[7])
            line += f' mf{mf - prev_thr.get((pid, "mf"), mf)}'; prev_thr[(pid, 'mf')] = mf
            st = rd(f'/proc/{pid}/status'); line += ' rss' + str(int(re.search(r'VmRSS:\s+(\d+)', st).group(1)) >> 10)
        except Exception: pass
        try: tids = os.listdir(f'/proc/{pid}/task')
        except Exception: continue
        for tid in sorted(map(int, tids)):
            r = stat_fields(f'/proc/{pid}/task/{tid}/stat')
            if not r: continue
            k = (pid, tid); d = r[1] - prev_thr.get(k, r[1]); prev_thr[k] = r[1]
            if d > 0: line += f' {tid-pid}:{d}'
    kt = kthreads(); ks = []
    for pid, (n, t, c) in kt.items():
        d = t - prev_k.get(pid, (n, t, c))[1]
        if d > 0: ks.append(f'{n}@{c}:{d}')
    prev_k = kt
    line += ' || k ' + ' '.join(ks)
    print(line, flush=True)
