#!/bin/bash
# Does the bench harness run on the servers' core 0? Runs `bench/quoll-ab.ts 16 3 4` from the
# checkout <dir> (its own build), lists the threads of every process of the harness 32 s in (the
# npm/sh/tsx launchers and the script), records `perf sched` on core 0 for 4 s, and sums the
# core-0 run time of those threads (and, roughly, of the servers' threads listed then; the rest is
# "other"). Needs perf and pgrep; takes the bench lock's 5 minutes at most.
#   flock /tmp/quoll-bench.lock timeout 330 bench/harness-core-probe.sh <dir> <tag>
# and sums core-0 run time of the harness's threads vs the servers' vs the rest.
dir=$1; tag=$2
cd $dir
CLI_A=$dir/packages/quoll/dist/cli/main.js AB_WARMUP_S=4 npx tsx bench/quoll-ab.ts 16 3 4 > /tmp/churn-hs-$tag.out 2>&1 &
sleep 32
harness=""
for p in $(pgrep -f "bench/quoll-ab.ts"); do harness="$harness $(ls /proc/$p/task)"; done
servers=""
for p in $(pgrep -f "dist/cli/main.js server"); do servers="$servers $(ls /proc/$p/task)"; done
for p in $(pgrep -f "bench/quoll-ab.ts"); do echo "harness pid $p affinity $(taskset -p $p | cut -d: -f2) $(tr '\0' ' ' < /proc/$p/cmdline | cut -c1-80)"; done
echo $harness > /tmp/churn-hs-$tag.harness; echo $servers > /tmp/churn-hs-$tag.servers
perf sched record -C 0 -o /tmp/churn-hs-$tag.data -- sleep 4 2>/dev/null >/dev/null
wait
perf sched timehist -i /tmp/churn-hs-$tag.data 2>/dev/null | python3 -c "
import sys,re
harness=set(open('/tmp/churn-hs-$tag.harness').read().split()); servers=set(open('/tmp/churn-hs-$tag.servers').read().split())
tot={'harness':0,'servers':0,'other':0}; n={'harness':0,'servers':0,'other':0}; mx={'harness':0,'servers':0,'other':0}
t0=t1=None
for l in sys.stdin.read().splitlines()[3:]:
  p=l.split()
  if len(p)<6: continue
  try: t=float(p[0]); run=float(p[-1])
  except: continue
  t0=t0 or t; t1=t
  m=re.search(r'\[(\d+)(/\d+)?\]', ' '.join(p[2:-3]))
  if not m: continue
  tid=m.group(1); k='harness' if tid in harness else 'servers' if tid in servers else 'other'
  if ' '.join(p[2:-3]).startswith('<idle>'): continue
  tot[k]+=run; n[k]+=1; mx[k]=max(mx[k],run)
d=t1-t0
print('core 0, %.1f s: '%d + '; '.join(f'{k}: {n[k]/d:.1f} runs/s, {tot[k]/d:.2f} ms/s, max {mx[k]:.2f} ms' for k in tot))
"
grep -E "^(A|B|json)" /tmp/churn-hs-$tag.out
