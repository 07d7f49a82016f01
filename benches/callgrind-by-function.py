#!/usr/bin/env python3
"""Costs per request of a callgrind profile, summed by function name.

Inlining splits one Rust function into pieces that callgrind names by file as well
(`file.rs:name`), so `callgrind_annotate` lists a function several times and its inclusive
cost under none of them whole. This reads the profile's raw records and sums by name alone:

    benches/callgrind-by-function.py PROFILE REQUESTS [REGEX]
        every function whose name matches REGEX (all without it): inclusive and self
        instructions per request, largest first
    benches/callgrind-by-function.py PROFILE REQUESTS --callees NAME
        what the function named exactly NAME calls, inclusive instructions per request

PROFILE is a `callgrind.out.*` file (benches/instructions.sh keeps llmgate's and the floor's);
REQUESTS the number of requests it counted. A call from a function to a piece of itself
(recursion, or inlining) is not counted twice. Used for the comparison of llmgate with the
contract floor in OPTIMIZATION.md ("A floor that does the contract's work").
"""

import collections
import re
import signal
import sys

NAMED = re.compile(r"c?fn=\((\d+)\)(?: (.*))?")


def read(path):
    """Self costs by name, and inclusive costs of calls by (caller, callee) name."""
    names = {}
    own = collections.Counter()
    calls = collections.Counter()
    function = callee = None
    cost_of_call = False
    with open(path, errors="replace") as profile:
        for line in profile:
            line = line.rstrip("\n")
            if line.startswith(("fn=", "cfn=")):
                match = NAMED.match(line)
                if match is None:
                    continue
                if match.group(2):
                    names[match.group(1)] = match.group(2)
                name = names.get(match.group(1))
                if line.startswith("fn="):
                    function = name
                else:
                    callee = name
            elif line.startswith("calls="):
                cost_of_call = True
            elif line and (line[0].isdigit() or line[0] in "+-*"):
                fields = line.split()
                if len(fields) < 2 or not fields[1].isdigit():
                    continue
                cost = int(fields[1])
                if cost_of_call:
                    cost_of_call = False
                    if callee != function:
                        calls[(function, callee)] += cost
                else:
                    own[function] += cost
    return own, calls


def main(argv):
    if len(argv) < 3:
        sys.exit(__doc__)
    own, calls = read(argv[1])
    requests = int(argv[2])
    if len(argv) > 4 and argv[3] == "--callees":
        target = argv[4]
        print(f"{own[target] / requests:9.0f}  (self) {target}")
        rows = sorted(((c, b) for (a, b), c in calls.items() if a == target), reverse=True)
        for cost, name in rows:
            if cost / requests >= 10:
                print(f"{cost / requests:9.0f}  {name}")
        return
    pattern = re.compile(argv[3]) if len(argv) > 3 else None
    inclusive = collections.Counter(own)
    for (caller, _), cost in calls.items():
        inclusive[caller] += cost
    print(f"{'inclusive':>9} {'self':>7}  instructions per request")
    for name, cost in inclusive.most_common():
        if cost / requests < 100:
            break
        if pattern is None or pattern.search(name or ""):
            print(f"{cost / requests:9.0f} {own[name] / requests:7.0f}  {name}")


if __name__ == "__main__":
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # piped into `head`: stop quietly
    main(sys.argv)
