import sys, collections, re
leafpat = sys.argv[2]; depth = int(sys.argv[3]) if len(sys.argv) > 3 else 6
text = open(sys.argv[1]).read().split("\n\n")
total = 0; hits = 0; c = collections.Counter(); threads = collections.Counter()
for s in text:
    lines = s.strip().split("\n")
    if len(lines) < 2: continue
    total += 1
    head = lines[0]
    fr = [re.sub(r"^\s*[0-9a-f]+\s+", "", l).split(" (")[0] for l in lines[1:]]
    fr = [re.sub(r"\+0x[0-9a-f]+$", "", f) for f in fr]
    if leafpat not in fr[0]: continue
    hits += 1
    threads[head.strip().split()[0]] += 1
    key = " <- ".join(f[:90] for f in fr[1:1+depth])
    c[key] += 1
print(total, hits, threads.most_common(5))
for k, v in c.most_common(25): print(v, k, "\n")
