"""A parent and a child process (multiprocessing, fork) that take turns
through two multiprocessing.Semaphore (unlinked POSIX semaphores under
/dev/shm, only mapped) and count in a multiprocessing.Value (shared memory
from multiprocessing's heap) under a multiprocessing.Lock: the objects a
tree shares, as Python's multiprocessing makes them.

Protocol: "start", "ready", "step N count=C" (parent) and "pong N
count=C" (child) in turn, "child exited N", "done C". A wait of more than
5 s prints an error line. MIGRATE_TEST_NOSLEEP makes the steps unpaced.
"""
import multiprocessing as mp
import os
import sys
import time

STEPS = 40
nosleep = "MIGRATE_TEST_NOSLEEP" in os.environ


def wait(sem, who):
    if not sem.acquire(timeout=5):
        print(f"error {who}: no turn within 5 s", flush=True)
        os._exit(1)


def child(ping, pong, lock, count):
    for s in range(1, STEPS + 1):
        wait(ping, "child")
        with lock:
            count.value += 1
            print(f"pong {s} count={count.value}", flush=True)
        pong.release()
    os._exit(3)


def main():
    print("start", flush=True)
    mp.set_start_method("fork")
    ping, pong = mp.Semaphore(0), mp.Semaphore(0)
    lock = mp.Lock()
    count = mp.Value("q", 0, lock=False)
    p = mp.Process(target=child, args=(ping, pong, lock, count))
    p.start()
    print("ready", flush=True)
    for s in range(1, STEPS + 1):
        with lock:
            count.value += 1
            print(f"step {s} count={count.value}", flush=True)
        ping.release()
        wait(pong, "parent")
        if not nosleep:
            time.sleep(0.03)
    p.join()
    print(f"child exited {p.exitcode}", flush=True)
    print(f"done {count.value}", flush=True)


main()
