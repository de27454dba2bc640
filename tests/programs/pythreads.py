"""Threaded test program for migrate: a `threading` worker pool fed through
`queue.Queue`.

Run with Debian's /usr/bin/python3. Main puts WORKERS jobs a step on one
job queue; the pool's threads take them in any order, fold each into a
shared dict under a `threading.Lock` (order-independent updates) and put
the result on a result queue. Main collects the step's results, sorts them
by job, and prints the step's line; at the end it sends every worker a
`None`, joins them, and prints a checksum.

Protocol: "start", one "step N ..." line per step, then "done <checksum>".
Every line is deterministic: it depends neither on which thread takes which
job nor on scheduling. Steps are paced with a 30 ms sleep in main unless
MIGRATE_TEST_NOSLEEP is set (no output changes).
"""

import os
import queue
import sys
import threading
import time

STEPS = 50
WORKERS = 4
MASK = (1 << 64) - 1


def mix(x):
    x ^= x >> 33
    x = (x * 0xFF51AFD7ED558CCD) & MASK
    x ^= x >> 33
    x = (x * 0xC4CEB9FE1A85EC53) & MASK
    return x ^ (x >> 33)


def work(seed):
    acc = seed
    for i in range(300):
        acc = mix(acc ^ i)
    return acc


def worker(jobs, results, totals, lock, counts):
    taken = 0
    while True:
        job = jobs.get()
        if job is None:
            jobs.task_done()
            break
        step, index, seed = job
        value = work(seed)
        with lock:
            key = (step + index) % 16
            totals[key] = (totals.get(key, 0) + value) & MASK
        taken += 1
        results.put((index, step, value))
        jobs.task_done()
    with lock:
        counts.append(taken)


def main():
    nosleep = "MIGRATE_TEST_NOSLEEP" in os.environ
    print("start", flush=True)
    jobs = queue.Queue()
    results = queue.Queue()
    totals = {}
    counts = []
    lock = threading.Lock()
    pool = [
        threading.Thread(
            target=worker,
            args=(jobs, results, totals, lock, counts),
            name=f"worker-{i}",
        )
        for i in range(WORKERS)
    ]
    for t in pool:
        t.start()
    check = 0
    for step in range(1, STEPS + 1):
        for index in range(WORKERS):
            jobs.put((step, index, mix(step * 1000 + index)))
        got = sorted(results.get() for _ in range(WORKERS))
        assert all(s == step for _, s, _ in got), got
        fold = step
        for _, _, value in got:
            fold = mix(fold ^ value)
        check = mix(check ^ fold)
        with lock:
            tsum = 0
            for k in range(16):
                tsum = mix(tsum ^ totals.get(k, 0))
        print(f"step {step} fold={fold:016x} totals={tsum:016x}", flush=True)
        if not nosleep:
            time.sleep(0.03)
    for _ in pool:
        jobs.put(None)
    jobs.join()
    for t in pool:
        t.join()
    print(f"done jobs={sum(counts)} {check:016x}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
