"""A multiprocessing.Pool(2) (fork) mapping over 200 items with imap, each
item taking 50 ms in a worker: the root holds both ends of the pool's
pipes (its task and result queues), and so do the workers.

Protocol: "start", "ready", "step N value=V" per result in order, "done S"
(S the sum of the values). MIGRATE_TEST_NOSLEEP makes the items unpaced.
"""
import multiprocessing as mp
import os
import time

ITEMS = 200
nosleep = "MIGRATE_TEST_NOSLEEP" in os.environ


def work(x):
    if not nosleep:
        time.sleep(0.05)
    return x * x + 1


def main():
    print("start", flush=True)
    mp.set_start_method("fork")
    total = 0
    with mp.Pool(2) as pool:
        print("ready", flush=True)
        for i, v in enumerate(pool.imap(work, range(ITEMS)), 1):
            total += v
            print(f"step {i} value={v}", flush=True)
    print(f"done {total}", flush=True)


if __name__ == "__main__":
    main()
