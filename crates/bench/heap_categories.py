#!/usr/bin/env python3
"""Sums a heaptrack flamegraph (`heaptrack_print --print-flamegraph F --flamegraph-cost-type
peak`) by where the memory is held: the first recognisable frame of each stack, from the
allocation outwards (the policy cache, kube's runner and scheduler, the work queue, ...).
Usage: heap_categories.py FLAMEGRAPH.txt"""

import collections
import sys

# Frame substrings, most specific first, and the name they stand for.
CATEGORIES = [
    ("store.rs", "policy cache (kube reflector store)"),
    ("future_hash_map.rs", "kube controller runner (waiting reconciles)"),
    ("scheduler.rs", "kube scheduler (next resyncs)"),
    ("new_span", "tracing spans"),
    ("layered.rs", "tracing, other"),
    ("(index.rs)", "policy index"),
    ("(ownership.rs)", "ownership"),
    ("(claims.rs)", "key claims"),
    ("(queue.rs)", "work queue"),
    ("(resyncs.rs)", "resync clock (next looks)"),
    ("(context.rs)", "per-policy memory (context)"),
    ("(secrets.rs)", "Secret cache"),
    ("(events.rs)", "events"),
    ("(reads.rs)", "shared reads"),
    ("(clients.rs)", "identity clients"),
    ("spawn", "tokio tasks"),
    ("(gather.rs)", "reconciles: gather"),
    ("(write.rs)", "reconciles: write"),
    ("(reconciler.rs)", "reconciles under way"),
    ("identity_client", "identity client"),
    ("hyper", "hyper"),
    ("h2", "h2"),
    ("serde_json", "serde_json"),
    ("watcher", "watch streams"),
]


def main(path):
    totals = collections.Counter()
    for line in open(path, encoding="utf-8"):
        stack, _, cost = line.rstrip("\n").rpartition(" ")
        frames = stack.split(";")
        where = "other"
        for frame in reversed(frames):
            hit = [name for pattern, name in CATEGORIES if pattern in frame]
            if hit:
                where = hit[0]
                break
        totals[where] += int(cost)
    print(f"{sum(totals.values()) / 1e6:8.2f} MB in all")
    for where, cost in totals.most_common():
        print(f"{cost / 1e6:8.2f}  {where}")


if __name__ == "__main__":
    main(sys.argv[1])
