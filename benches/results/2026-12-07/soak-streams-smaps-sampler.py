#!/usr/bin/env python3
"""Samples /proc/PID/smaps every N seconds (usage: PID SECONDS OUT.jsonl): RSS by kind of mapping (the binary, files, anonymous, [heap], -shm) and each anonymous mapping; used beside the night soaks of 2026-12-07 (OPTIMIZATION.md, "What the streams soak's RSS climb is"). glibc's thread arenas are the anonymous mappings at 64 MiB-aligned addresses."""
import sys, time, re, json
pid, every, out = sys.argv[1], float(sys.argv[2]), sys.argv[3]
hdr = re.compile(r'^([0-9a-f]+)-([0-9a-f]+) (\S+) \S+ \S+ \S+\s*(.*)$')
def sample():
    maps = []
    cur = None
    with open(f'/proc/{pid}/smaps') as f:
        for line in f:
            m = hdr.match(line)
            if m:
                cur = {'start': m.group(1), 'size': (int(m.group(2),16)-int(m.group(1),16))//1024, 'perm': m.group(3), 'name': m.group(4).strip(), 'rss': 0, 'anon': 0}
                maps.append(cur)
            elif line.startswith('Rss:'):
                cur['rss'] = int(line.split()[1])
            elif line.startswith('Anonymous:'):
                cur['anon'] = int(line.split()[1])
    return maps
t0 = time.time()
with open(out, 'a') as o:
    while True:
        try:
            maps = sample()
        except FileNotFoundError:
            break
        cats = {}
        for m in maps:
            n = m['name']
            c = 'anon' if n == '' else ('heap' if n == '[heap]' else ('stack' if n.startswith('[stack') else ('shm' if n.endswith('-shm') else ('exe' if 'llmgate' in n else ('file' if n.startswith('/') else n)))))
            cats[c] = cats.get(c, 0) + m['rss']
        anon = sorted([(m['start'], m['size'], m['rss']) for m in maps if m['name'] == '' and m['rss'] > 0])
        o.write(json.dumps({'t': round(time.time()-t0), 'cats': cats, 'total': sum(cats.values()), 'anon_maps': anon}) + '\n')
        o.flush()
        time.sleep(every)
