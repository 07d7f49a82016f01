#!/usr/bin/env python3
# usage: sample.py PATTERN OUT: samples the newest process whose cmdline contains PATTERN, keeps the
# breakdown of /proc/PID/smaps at the sample of highest VmRSS.
import sys, time, os, collections, subprocess
pat, out = sys.argv[1], sys.argv[2]
best = 0; seen = False
def breakdown(pid):
    s = collections.Counter(); big = []
    cur = None
    for line in open(f'/proc/{pid}/smaps'):
        f = line.split()
        if '-' in f[0] and len(f) >= 5 and ':' not in f[0]:
            a, b = (int(x, 16) for x in f[0].split('-'))
            name = f[5] if len(f) > 5 else ''
            sz = b - a
            if name: k = name
            elif a % (64 << 20) == 0 and sz < (64 << 20): k = 'anon: glibc arena (SQLite, C code)'
            elif sz >= (2 << 20): k = 'anon: >=2 MiB maps (jemalloc)'
            else: k = 'anon: small maps (stacks, jemalloc small, glibc)'
            cur = (k, f[0], f[1], sz)
        elif f[0] == 'Rss:':
            s[cur[0]] += int(f[1])
            if int(f[1]) >= 512: big.append((int(f[1]), cur))
    return s, big
while True:
    try:
        # pgrep -f also matches this script's own command line, which holds the pattern.
        pids = [p for p in subprocess.run(['pgrep', '-f', pat], capture_output=True, text=True).stdout.split() if int(p) != os.getpid()][-1:]
        if not pids:
            if seen: break
            time.sleep(0.5); continue
        pid = pids[0]; seen = True
        st = open(f'/proc/{pid}/status').read()
        rss = int([l for l in st.splitlines() if l.startswith('VmRSS')][0].split()[1])
        if rss > best:
            best = rss
            s, big = breakdown(pid)
            with open(out + '.tmp', 'w') as o:
                o.write(time.strftime('%T') + f' pid {pid}\n')
                o.write('\n'.join(l for l in st.splitlines() if l.split(':')[0] in ('VmRSS','VmHWM','RssAnon','RssFile','Threads')) + '\n')
                for k, v in s.most_common():
                    if v > 100: o.write(f'{v:8d} KiB {k}\n')
                o.write('maps >= 512 KiB:\n')
                for v, c in sorted(big, reverse=True): o.write(f'{v:8d} {c[1]} {c[2]} size {c[3]>>10} KiB {c[0]}\n')
            os.replace(out + '.tmp', out)
    except (FileNotFoundError, ProcessLookupError, IndexError):
        pass
    time.sleep(0.3)
