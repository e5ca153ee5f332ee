#!/usr/bin/env python3
"""Summarises a folded perf profile (inferno-collapse-perf output): share of samples per
thread, the top functions by self time, and by inclusive time (a function counted once per
stack it appears in).

    profile_summary.py PROFILE.folded [TOP]
"""

import collections
import sys


def main():
    path = sys.argv[1]
    top = int(sys.argv[2]) if len(sys.argv) > 2 else 30
    total = 0
    threads = collections.Counter()
    own = collections.Counter()
    inclusive = collections.Counter()
    with open(path) as folded:
        for line in folded:
            stack, _, count = line.rstrip("\n").rpartition(" ")
            samples = int(count)
            total += samples
            frames = stack.split(";")
            threads[frames[0]] += samples
            own[frames[-1]] += samples
            for frame in set(frames[1:]):
                inclusive[frame] += samples
    share = lambda n: f"{100 * n / max(total, 1):5.1f} %"
    print(f"{total} samples")
    print("\nby thread:")
    for name, samples in threads.most_common(10):
        print(f"  {share(samples)}  {name}")
    print(f"\ntop {top} by self time:")
    for name, samples in own.most_common(top):
        print(f"  {share(samples)}  {name[:160]}")
    print(f"\ntop {top} by inclusive time:")
    for name, samples in inclusive.most_common(top):
        print(f"  {share(samples)}  {name[:160]}")


if __name__ == "__main__":
    main()
