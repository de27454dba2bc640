"""Test program 3 for migrate: a Python script whose state is a large dict.

Run with Debian's /usr/bin/python3. Protocol: "start", one "step N ..." line
per step, then "done <checksum>". Keys are ints, and only order-independent
sums are printed, so every line is deterministic. Steps are paced with a
30 ms sleep unless MIGRATE_TEST_NOSLEEP is set (no output changes).
"""

import os
import sys
import time

STEPS = 60
ENTRIES = 200_000
MASK = (1 << 64) - 1


def mix(x):
    x ^= x >> 33
    x = (x * 0xFF51AFD7ED558CCD) & MASK
    x ^= x >> 33
    x = (x * 0xC4CEB9FE1A85EC53) & MASK
    return x ^ (x >> 33)


def main():
    nosleep = "MIGRATE_TEST_NOSLEEP" in os.environ
    print("start", flush=True)
    table = {k: mix(k) for k in range(ENTRIES)}
    names = {f"key{k}": k for k in range(0, ENTRIES, 10)}
    history = []
    for step in range(1, STEPS + 1):
        for k in range(step * 2000, step * 2000 + 2000):
            key = k % ENTRIES
            table[key] = mix(table[key] + step)
        table[ENTRIES + step] = step
        del table[step * 17]
        names[f"step{step}"] = step
        total = sum(table.values()) & MASK
        history.append(total)
        print(
            f"step {step} len={len(table)} names={len(names)} sum={total:016x}",
            flush=True,
        )
        if not nosleep:
            time.sleep(0.03)
    check = 0
    for v in history:
        check = mix(check ^ v)
    check = mix(check ^ sum(names.values()))
    print(f"done {check:016x}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
