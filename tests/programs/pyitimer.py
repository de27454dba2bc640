"""An interval timer that has expired with its SIGALRM blocked: it reads
0 with its interval, the signal pending, and the kernel re-arms it only
as the signal is taken. After the steps the program unblocks SIGALRM and
counts: the timer must still repeat.

Protocol: "start", "step N" lines, then "done repeats" (or "done stopped").
MIGRATE_TEST_NOSLEEP makes the steps unpaced.
"""
import os
import signal
import time

nosleep = "MIGRATE_TEST_NOSLEEP" in os.environ
count = 0


def tick(_sig, _frame):
    global count
    count += 1


signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
signal.signal(signal.SIGALRM, tick)
signal.setitimer(signal.ITIMER_REAL, 0.02, 0.02)
time.sleep(0.1)
print("start", flush=True)
for i in range(1, 31):
    print(f"step {i}", flush=True)
    if not nosleep:
        time.sleep(0.05)
signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGALRM})
t = time.monotonic()
while time.monotonic() - t < 0.3:
    time.sleep(0.01)
signal.setitimer(signal.ITIMER_REAL, 0)
print("done", "repeats" if count >= 3 else "stopped", flush=True)
