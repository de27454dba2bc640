#!/usr/bin/env bash
# Runs a program under migrate, dumps it, kills it, and restores it: the
# restored process carries on from the dump and ends as an uninterrupted
# run would.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
migrate=$root/target/release/migrate
[ -x "$migrate" ] || { echo "demo: $migrate is missing; run make first" >&2; exit 1; }
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
cd "$dir"
gcc -O1 -o counter "$root/scripts/demo.c"

echo "== uninterrupted run, for reference (last line):"
./counter | tail -n 1

echo "== migrate run -- ./counter, then after step 8: migrate dump --exit PID"
"$migrate" run --image "$dir/counter.img" -- ./counter > run.out 2> run.err &
pid=$!
until grep -q "^step  8" run.out 2>/dev/null; do sleep 0.05; done
"$migrate" dump --exit "$pid"
wait "$pid" 2>/dev/null || true
cat run.out
cat run.err
echo "   (process $pid is gone; its image is counter.img)"

echo "== migrate restore counter.img"
"$migrate" restore counter.img
