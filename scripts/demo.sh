#!/usr/bin/env bash
# Runs a program under libmigrate.so, dumps it, kills it, and restores it:
# the restored process carries on from the dump and ends as an
# uninterrupted run would.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
lib=$root/target/release/libmigrate.so
[ -f "$lib" ] || { echo "demo: $lib is missing; run make first" >&2; exit 1; }
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
cd "$dir"
gcc -O1 -o counter "$root/scripts/demo.c"

echo "== uninterrupted run, for reference (last line):"
./counter | tail -n 1

echo "== run under libmigrate.so; dump after step 8 with kill -USR2, then kill -9:"
LD_PRELOAD=$lib MIGRATE_LOG=info MIGRATE_IMAGE=$dir/counter.img ./counter > run.out 2> run.err &
pid=$!
until grep -q "^step  8" run.out 2>/dev/null; do sleep 0.05; done
kill -USR2 "$pid"
until [ -f counter.img ]; do sleep 0.05; done
kill -9 "$pid"
wait "$pid" 2>/dev/null || true
cat run.out
cat run.err
echo "   (process $pid killed; image $(du -h counter.img | cut -f1))"

echo "== restore: MIGRATE_RESTORE=counter.img LD_PRELOAD=libmigrate.so ./counter"
MIGRATE_RESTORE=counter.img MIGRATE_LOG=info LD_PRELOAD=$lib ./counter
