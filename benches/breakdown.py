#!/usr/bin/env python3
"""Where llmgate's CPU time goes, from a `make profile` recording.

Reads `perf script` output of a profile (target/bench/profile-*.data) and prints the share of
all samples in the kernel (by system call), and in user space by part of the request path. A
sample is counted once, for the part nearest its leaf frame, so the shares add up to 100 %.

    python3 benches/breakdown.py target/bench/profile-<stamp>.data
    make profile-breakdown        # the newest profile under target/bench
"""

import collections
import re
import subprocess
import sys

# User-space parts, matched against frame names from the leaf upwards; the first part any frame
# matches takes the sample.
PARTS = [
    ("log line formatting (tracing-subscriber)", ["tracing_subscriber::fmt", "nu_ansi_term"]),
    ("tracing spans", ["tracing_subscriber::registry", "EnvFilter", "tracing::span::"]),
    ("reqwest's own layers (redirect, retry, timeouts, URL parsing)", ["reqwest::"]),
    ("JSON parsing (serde_json)", ["serde_json"]),
    ("SQLite writer (background)", ["sqlx", "sqlite3"]),
    ("usage, limits, keys", ["llmgate::usage", "llmgate::limits", "llmgate::auth", "llmgate::keys"]),
    ("metrics (prometheus)", ["prometheus"]),
    ("HTTP client (hyper, hyper-util)", ["hyper::client", "hyper_util::client", "role::Client"]),
    ("HTTP server (hyper, axum, tower)", ["hyper::proto", "hyper::server", "hyper_util::server",
                                         "axum", "tower", "matchit"]),
    ("llmgate's request path", ["llmgate::"]),
    ("allocator", ["mi_", "malloc", "free"]),
    ("tokio runtime", ["tokio::"]),
]

SYSCALL = re.compile(r"(__x64_sys_\w+|do_writev|ksys_write|__sys_recvfrom|do_epoll_wait|"
                     r"do_futex|asm_exc_page_fault|asm_sysvec\w+)")


def frames(sample):
    for line in sample.strip().split("\n")[1:]:
        line = re.sub(r"^\s*[0-9a-f]+\s+", "", line)
        yield re.sub(r"\+0x[0-9a-f]+", "", line.split(" (/")[0])


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    script = subprocess.run(["perf", "script", "-i", sys.argv[1]], capture_output=True,
                            text=True, check=True).stdout
    kernel = collections.Counter()
    user = collections.Counter()
    total = 0
    for sample in script.split("\n\n"):
        stack = list(frames(sample))
        if not stack:
            continue
        total += 1
        if "[kernel" in sample.strip().split("\n")[1]:
            name = "other (interrupts, scheduling)"
            for frame in stack:
                found = SYSCALL.match(frame)
                if found:
                    name = found.group(1)
                    if name == "do_writev":
                        server = any("dispatch::Server" in f for f in stack)
                        name = "writev: response to the client" if server else \
                            "writev: request to the upstream"
                    elif name == "ksys_write":
                        name = "write (files, stderr)"
                    break
            kernel[name] += 1
            continue
        name = "other"
        for frame in stack:
            hit = next((part for part, keys in PARTS if any(k in frame for k in keys)), None)
            if hit:
                name = hit
                break
        user[name] += 1
    if total == 0:
        sys.exit("no samples in the profile")
    print(f"{total} samples; kernel {100 * sum(kernel.values()) / total:.1f} %, "
          f"user space {100 * sum(user.values()) / total:.1f} %\n")
    for title, counter in (("kernel, by system call", kernel), ("user space, by part", user)):
        print(title)
        for name, count in counter.most_common():
            print(f"  {100 * count / total:5.1f} %  {name}")
        print()


if __name__ == "__main__":
    main()
