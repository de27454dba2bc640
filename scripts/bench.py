#!/usr/bin/env python3
"""`make bench`: times dumps and restores of `scripts/bench.c` workloads.

Prints a table and writes JSON (BENCH_JSON, default target/bench/bench.json).
Every figure is the median of BENCH_REPEAT runs (default 3). The method is
described in docs/PERFORMANCE.md, which holds the latest table.

What each column means:
  dump      signal sent -> image renamed into place (fsync included)
  pause     the app's own view: the longest its 1 ms ticker thread went
            without running around the dump
  image     the image file's size
  running   relaunch -> the restored process answers a command
  touched   relaunch -> the restored process has read every page
References in the same run: `dd` writing the image's bytes (fsync),
reading the image (page cache), first touch and memcpy of the memory,
`gzip -6` of an uncompressed image, and CRIU / DMTCP when CRIU=/path/criu
or DMTCP_BIN=/dir/with/dmtcp_launch is set (CRIU needs root).

Settings (environment): BENCH_REPEAT, BENCH_QUICK=1 (small sizes only),
BENCH_ROWS=name,name (only those rows), BENCH_DIR (scratch, default /tmp).
"""

import json
import os
import select
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LIB = os.path.join(ROOT, "target/release/libmigrate.so")
REPEAT = int(os.environ.get("BENCH_REPEAT", "3"))
QUICK = os.environ.get("BENCH_QUICK") == "1"
ONLY = [r for r in os.environ.get("BENCH_ROWS", "").split(",") if r]
TIMEOUT = 120.0


class Failed(Exception):
    pass


class App:
    """The subject under the preload, answering commands on a pipe."""

    def __init__(self, args, env=None, restore=None):
        e = dict(os.environ)
        e["LD_PRELOAD"] = LIB
        e.update(env or {})
        if restore:
            e["MIGRATE_RESTORE"] = restore
        self.t0 = time.monotonic()
        # A session of its own: a tree's children end with it (`end`).
        self.p = subprocess.Popen(
            args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=e, bufsize=0,
            start_new_session=True,
        )
        self.restored = bool(restore)
        self.buf = b""

    def line(self, timeout=TIMEOUT):
        end = time.monotonic() + timeout
        while b"\n" not in self.buf:
            left = end - time.monotonic()
            if left <= 0:
                raise Failed("no answer within %.0f s" % timeout)
            r, _, _ = select.select([self.p.stdout], [], [], left)
            if r:
                chunk = os.read(self.p.stdout.fileno(), 65536)
                if not chunk:
                    raise Failed("the process ended (status %s)" % self.p.wait())
                self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return line.decode()

    def ask(self, cmd):
        self.p.stdin.write(cmd.encode() + b"\n")
        return self.line()

    def send(self, cmd):
        self.p.stdin.write(cmd.encode() + b"\n")

    def end(self):
        if not self.restored:
            # The original and any children it forked.
            try:
                os.killpg(self.p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.p.wait()
            return
        if self.p.poll() is None:
            # Forwarded by the supervisor; the namespace ends with its root.
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(10)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()


def wait_file(path, since, timeout=TIMEOUT):
    """Seconds from `since` until `path` exists (polled every 0.5 ms)."""
    end = since + timeout
    while not os.path.exists(path):
        if time.monotonic() > end:
            raise Failed("no image at %s" % path)
        time.sleep(0.0005)
    return time.monotonic() - since


def dump(app, image, extra_wait=None):
    """Dumps `app` (continue mode); returns (seconds, pause ms, bytes)."""
    if os.path.exists(image):
        os.unlink(image)
    app.ask("z")
    t0 = time.monotonic()
    os.kill(app.p.pid, signal.SIGUSR2)
    secs = wait_file(image, t0)
    gap = float(app.ask("g").split()[1])
    return secs, gap, os.path.getsize(image)


def restore(args, image, env=None):
    """Restores `image`; returns (until running, until touched) seconds."""
    app = App(args, env=env, restore=image)
    try:
        app.send("p")
        if app.line() != "alive":
            raise Failed("unexpected answer")
        running = time.monotonic() - app.t0
        app.ask("t")
        touched = time.monotonic() - app.t0
        return running, touched
    finally:
        app.end()


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def timed(cmd, **kw):
    t0 = time.monotonic()
    subprocess.run(cmd, check=True, **kw)
    return time.monotonic() - t0


class Bench:
    def __init__(self, scratch):
        self.dir = scratch
        self.subject = os.path.join(scratch, "bench")
        subprocess.run(
            ["gcc", "-O2", "-o", self.subject, os.path.join(ROOT, "scripts/bench.c"), "-lpthread"],
            check=True,
        )
        self.rows = []

    def img(self, name):
        return os.path.join(self.dir, name + ".img")

    def record(self, row):
        self.rows.append(row)
        print(fmt_row(row), flush=True)

    def dump_restore(self, name, args, env=None, modes=("eager", "lazy"), refs=True, note=""):
        """Stop-mode and snapshot dumps, then eager and lazy restores."""
        if ONLY and name not in ONLY:
            return
        row = {"name": name, "args": args[1:], "note": note}
        try:
            for snap in ("stop", "snapshot"):
                runs = []
                for _ in range(REPEAT):
                    e = dict(env or {})
                    e["MIGRATE_IMAGE"] = self.img(name)
                    if snap == "stop":
                        e["MIGRATE_SNAPSHOT"] = "stop"
                    app = App(args, env=e)
                    try:
                        app.line()
                        runs.append(dump(app, self.img(name)))
                    finally:
                        app.end()
                row[snap + "_dump_s"] = med(r[0] for r in runs)
                row[snap + "_pause_ms"] = med(r[1] for r in runs)
                row["image_bytes"] = runs[-1][2]
            for mode in modes:
                e = dict(env or {})
                e["MIGRATE_RESTORE_MODE"] = mode
                rs = [restore([self.subject], self.img(name), e) for _ in range(REPEAT)]
                row[mode + "_running_s"] = med(r[0] for r in rs)
                row[mode + "_touched_s"] = med(r[1] for r in rs)
            if refs:
                self.references(row, self.img(name))
        except (Failed, subprocess.CalledProcessError) as e:
            row["error"] = str(e)
        self.record(row)

    def references(self, row, image):
        size = os.path.getsize(image)
        out = os.path.join(self.dir, "dd.out")
        mib = max(1, size >> 20)
        dd = [
            timed(
                ["dd", "if=/dev/zero", "of=" + out, "bs=1M", "count=%d" % mib, "conv=fsync"],
                stderr=subprocess.DEVNULL,
            )
            for _ in range(REPEAT)
        ]
        os.unlink(out)
        row["ref_dd_s"] = med(dd)
        row["ref_read_s"] = med(
            timed(["cat", image], stdout=subprocess.DEVNULL) for _ in range(REPEAT)
        )
        mem_mib = memory_mib(row["args"])
        if mem_mib:
            r = subprocess.run(
                [self.subject, "memref", str(mem_mib)], capture_output=True, text=True, check=True
            ).stdout.split()
            row["ref_touch_s"] = float(r[1])
            row["ref_memcpy_s"] = float(r[5])

    def tiny_and_sparse(self):
        self.dump_restore("tiny", [self.subject, "tiny"], refs=False)
        self.dump_restore("heap-100M", [self.subject, "heap", "100"])
        self.dump_restore(
            "sparse-64G-100M", [self.subject, "sparse", "64", "100"], note="64 GiB reserved"
        )

    def tree(self, procs, mib):
        name = "tree-%dx%dM" % (procs, mib)
        self.dump_restore(name, [self.subject, "heap", str(mib), str(procs)], modes=("eager",))

    def compressed(self, mib):
        name = "text-%dM" % mib
        if ONLY and name not in ONLY:
            return
        row = {"name": name, "args": ["text", str(mib)], "note": "half text"}
        args = [self.subject, "text", str(mib)]
        try:
            for comp in ("none", "zstd"):
                runs = []
                for _ in range(REPEAT):
                    env = {
                        "MIGRATE_COMPRESS": comp,
                        "MIGRATE_SNAPSHOT": "stop",
                        "MIGRATE_IMAGE": self.img(name + comp),
                    }
                    app = App(args, env=env)
                    try:
                        app.line()
                        runs.append(dump(app, self.img(name + comp)))
                    finally:
                        app.end()
                row[comp + "_dump_s"] = med(r[0] for r in runs)
                row[comp + "_bytes"] = runs[-1][2]
                rs = [restore([self.subject], self.img(name + comp)) for _ in range(REPEAT)]
                row[comp + "_running_s"] = med(r[0] for r in rs)
            raw = self.img(name + "none")
            gz = []
            for _ in range(REPEAT):
                t0 = time.monotonic()
                r = subprocess.run(["gzip", "-6", "-c", raw], capture_output=True, check=True)
                gz.append(time.monotonic() - t0)
                row["gzip_bytes"] = len(r.stdout)
            row["gzip_s"] = med(gz)
        except (Failed, subprocess.CalledProcessError) as e:
            row["error"] = str(e)
        self.record(row)

    def incremental(self, mib, permille):
        name = "incr-%dM" % mib
        if ONLY and name not in ONLY:
            return
        row = {"name": name, "args": ["heap", str(mib)], "note": "%g%% rewritten" % (permille / 10)}
        pattern = os.path.join(self.dir, "incr-%n.img")
        try:
            full, incr = [], []
            for _ in range(REPEAT):
                for f in os.listdir(self.dir):
                    if f.startswith("incr-"):
                        os.unlink(os.path.join(self.dir, f))
                env = {"MIGRATE_IMAGE": pattern, "MIGRATE_INCREMENTAL": "8"}
                app = App([self.subject, "heap", str(mib)], env=env)
                try:
                    app.line()
                    full.append(dump(app, pattern.replace("%n", "1")))
                    app.ask("r %d" % permille)
                    incr.append(dump(app, pattern.replace("%n", "2")))
                finally:
                    app.end()
            row["full_dump_s"] = med(r[0] for r in full)
            row["full_bytes"] = full[-1][2]
            row["incr_dump_s"] = med(r[0] for r in incr)
            row["incr_pause_ms"] = med(r[1] for r in incr)
            row["incr_bytes"] = incr[-1][2]
            rs = [restore([self.subject], pattern.replace("%n", "2")) for _ in range(REPEAT)]
            row["incr_running_s"] = med(r[0] for r in rs)
        except (Failed, subprocess.CalledProcessError) as e:
            row["error"] = str(e)
        self.record(row)

    def startup(self):
        if ONLY and "startup" not in ONLY:
            return
        n = 100 if QUICK else 300

        def runs(env):
            ts = []
            for _ in range(n):
                t0 = time.monotonic()
                subprocess.run([self.subject, "exit"], env=env, check=True)
                ts.append(time.monotonic() - t0)
            return statistics.median(ts)

        plain = dict(os.environ)
        plain.pop("LD_PRELOAD", None)
        pre = dict(plain, LD_PRELOAD=LIB)
        a, b = runs(plain), runs(pre)
        self.record({"name": "startup", "plain_s": a, "preload_s": b, "cost_ms": (b - a) * 1e3})

    def rivals(self, mib):
        """CRIU and DMTCP on the same heap, when their paths are given."""
        for tool in ("criu", "dmtcp"):
            name = "%s-heap-%dM" % (tool, mib)
            if ONLY and name not in ONLY:
                continue
            path = os.environ.get("CRIU" if tool == "criu" else "DMTCP_BIN")
            if not path:
                continue
            row = {"name": name, "args": ["heap", str(mib)], "note": tool}
            try:
                runs = [getattr(self, tool)(path, mib) for _ in range(REPEAT)]
                row["stop_dump_s"] = med(r[0] for r in runs)
                row["image_bytes"] = runs[-1][1]
                row["eager_running_s"] = med(r[2] for r in runs)
            except (Failed, subprocess.CalledProcessError, OSError) as e:
                row["error"] = str(e)
            self.record(row)

    def ticking(self, cmd, out, cwd=None):
        env = dict(os.environ, BENCH_TICK="1")
        env.pop("LD_PRELOAD", None)
        f = open(out, "ab")  # appended: a restored copy writes at the end
        p = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=f, stderr=subprocess.DEVNULL, env=env,
            cwd=cwd, start_new_session=True,
        )
        return p, f

    def wait_ticks(self, out, n0, t0):
        while True:
            with open(out, "rb") as f:
                if f.read().count(b"tick") > n0:
                    return time.monotonic() - t0
            if time.monotonic() - t0 > TIMEOUT:
                raise Failed("no tick in %s" % out)
            time.sleep(0.001)

    def criu(self, criu, mib):
        d = tempfile.mkdtemp(dir=self.dir)
        out = os.path.join(d, "out")
        p, f = self.ticking([self.subject, "heap", str(mib)], out)
        try:
            self.wait_ticks(out, 0, time.monotonic())
            t0 = time.monotonic()
            subprocess.run([criu, "dump", "-t", str(p.pid), "-D", d, "--leave-running",
                            "--shell-job"], check=True, capture_output=True)
            dump_s = time.monotonic() - t0
        finally:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
        size = sum(os.path.getsize(os.path.join(d, x)) for x in os.listdir(d) if x.endswith(".img"))
        n0 = open(out, "rb").read().count(b"tick")
        t0 = time.monotonic()
        pidfile = os.path.join(d, "restored.pid")
        subprocess.run([criu, "restore", "-D", d, "-d", "--shell-job", "--pidfile", pidfile],
                       check=True, capture_output=True)
        running = self.wait_ticks(out, n0, t0)
        os.kill(int(open(pidfile).read().strip()), signal.SIGKILL)
        f.close()
        shutil.rmtree(d)
        return dump_s, size, running

    def dmtcp(self, bindir, mib):
        d = tempfile.mkdtemp(dir=self.dir)
        out = os.path.join(d, "out")
        port = os.path.join(d, "port")
        launch = [os.path.join(bindir, "dmtcp_launch"), "--new-coordinator", "--coord-port", "0",
                  "--port-file", port, "--ckptdir", d, "--no-gzip"]
        p, f = self.ticking(launch + [self.subject, "heap", str(mib)], out, cwd=d)
        try:
            self.wait_ticks(out, 0, time.monotonic())
            coord = open(port).read().strip()
            t0 = time.monotonic()
            subprocess.run([os.path.join(bindir, "dmtcp_command"), "--coord-port", coord, "-bc"],
                           check=True, capture_output=True)
            dump_s = time.monotonic() - t0
            subprocess.run([os.path.join(bindir, "dmtcp_command"), "--coord-port", coord, "-q"],
                           check=False, capture_output=True)
        finally:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            p.wait()
        ckpts = [os.path.join(d, x) for x in os.listdir(d) if x.endswith(".dmtcp")]
        size = sum(os.path.getsize(x) for x in ckpts)
        n0 = open(out, "rb").read().count(b"tick")
        t0 = time.monotonic()
        r = subprocess.Popen([os.path.join(bindir, "dmtcp_restart"), "--new-coordinator",
                              "--coord-port", "0"] + ckpts, stdout=f,
                             stderr=subprocess.DEVNULL, start_new_session=True)
        # (DMTCP gives the restored process the restart's own stdio.)
        try:
            running = self.wait_ticks(out, n0, t0)
        finally:
            os.killpg(r.pid, signal.SIGKILL)
            r.wait()
        f.close()
        shutil.rmtree(d)
        return dump_s, size, running


def memory_mib(args):
    if len(args) >= 2 and args[0] in ("heap", "text"):
        procs = int(args[2]) if len(args) > 2 else 1
        return int(args[1]) * procs
    if args and args[0] == "sparse":
        return int(args[2]) if len(args) > 2 else 100
    return 0


def num(v, unit):
    if v is None:
        return "-"
    if unit == "s":
        return "%.3f" % v if v < 10 else "%.1f" % v
    if unit == "ms":
        return "%.1f" % v
    if unit == "B":
        for u, d in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
            if v >= d:
                return "%.2f %s" % (v / d, u)
        return "%d B" % v
    return str(v)


COLUMNS = [
    ("stop_dump_s", "dump(stop)", "s"),
    ("stop_pause_ms", "pause(stop) ms", "ms"),
    ("snapshot_dump_s", "dump(snap)", "s"),
    ("snapshot_pause_ms", "pause(snap) ms", "ms"),
    ("image_bytes", "image", "B"),
    ("eager_running_s", "eager run", "s"),
    ("eager_touched_s", "eager touch", "s"),
    ("lazy_running_s", "lazy run", "s"),
    ("lazy_touched_s", "lazy touch", "s"),
    ("ref_dd_s", "dd", "s"),
    ("ref_read_s", "read", "s"),
    ("ref_touch_s", "touch", "s"),
    ("ref_memcpy_s", "memcpy", "s"),
]


def fmt_row(r):
    name = r["name"]
    if "error" in r:
        return "%-18s failed: %s" % (name, r["error"])
    if name == "startup":
        return "%-18s preload start-up cost %.2f ms (%.2f ms with, %.2f ms without)" % (
            name, r["cost_ms"], r["preload_s"] * 1e3, r["plain_s"] * 1e3)
    if name.startswith("text-"):
        return ("%-18s none: dump %s, %s, restore %s | zstd: dump %s, %s, restore %s | "
                "gzip -6: %s, %s") % (
            name, num(r["none_dump_s"], "s"), num(r["none_bytes"], "B"),
            num(r["none_running_s"], "s"), num(r["zstd_dump_s"], "s"),
            num(r["zstd_bytes"], "B"), num(r["zstd_running_s"], "s"),
            num(r["gzip_s"], "s"), num(r["gzip_bytes"], "B"))
    if name.startswith("incr-"):
        return ("%-18s full: dump %s, %s | incremental (%s): dump %s, pause %s ms, %s, "
                "restore %s") % (
            name, num(r["full_dump_s"], "s"), num(r["full_bytes"], "B"), r["note"],
            num(r["incr_dump_s"], "s"), num(r["incr_pause_ms"], "ms"),
            num(r["incr_bytes"], "B"), num(r["incr_running_s"], "s"))
    cells = ["%s %s" % (title, num(r.get(k), u)) for k, title, u in COLUMNS if k in r]
    return "%-18s %s" % (name, ", ".join(cells))


def main():
    if not os.path.exists(LIB):
        sys.exit("bench: %s is missing; run make first" % LIB)
    scratch = tempfile.mkdtemp(prefix="migrate-bench.", dir=os.environ.get("BENCH_DIR", "/tmp"))
    try:
        b = Bench(scratch)
        print("migrate bench: median of %d runs each (see docs/PERFORMANCE.md)" % REPEAT,
              flush=True)
        b.startup()
        b.tiny_and_sparse()
        b.dump_restore("heap-64M", [b.subject, "heap", "64"])
        b.dump_restore("heap-1G", [b.subject, "heap", "1024"])
        if not QUICK:
            b.dump_restore("heap-4G", [b.subject, "heap", "4096"])
        b.compressed(256 if QUICK else 1024)
        b.incremental(256 if QUICK else 1024, 10)
        b.tree(8, 64)
        b.dump_restore("heap-512M", [b.subject, "heap", "512"], modes=("eager",), refs=False)
        b.rivals(1024)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    out = os.environ.get("BENCH_JSON", os.path.join(ROOT, "target/bench/bench.json"))
    os.makedirs(os.path.dirname(out), exist_ok=True)
    info = {
        "kernel": os.uname().release,
        "cpus": os.cpu_count(),
        "time": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "repeat": REPEAT,
        "rows": b.rows,
    }
    with open(out, "w") as f:
        json.dump(info, f, indent=1)
    print("wrote " + out)


if __name__ == "__main__":
    main()
