#!/usr/bin/env bash
# Times a dump and a restore of a process holding N MiB of non-zero memory,
# for a few sizes. Not part of `make test`: timings depend on the machine.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
lib=$root/target/release/libmigrate.so
sizes=${BENCH_SIZES:-"256 1024 4096"}
dir=$(mktemp -d "${BENCH_DIR:-/tmp}/migrate-bench.XXXXXX")
trap 'rm -rf "$dir"' EXIT
gcc -O2 -o "$dir/subject" "$root/scripts/bench.c"
now() { date +%s.%N; }
printf '%8s %12s %10s %10s %12s\n' "MiB" "image bytes" "dump s" "restore s" "dump GiB/s"
for mib in $sizes; do
    img=$dir/bench-$mib.img
    rm -f "$img" "$dir/out"
    LD_PRELOAD=$lib MIGRATE_IMAGE=$img MIGRATE_AFTER_DUMP=exit "$dir/subject" "$mib" > "$dir/out" &
    pid=$!
    until grep -q ready "$dir/out" 2>/dev/null; do sleep 0.01; done
    t0=$(now)
    kill -USR2 "$pid"
    wait "$pid"
    t1=$(now)
    # Restore, and time until the restored process prints its next line.
    rm -f "$dir/out2"
    t2=$(now)
    MIGRATE_RESTORE=$img LD_PRELOAD=$lib "$dir/subject" > "$dir/out2" &
    rpid=$!
    until grep -q sum "$dir/out2" 2>/dev/null; do sleep 0.005; done
    t3=$(now)
    kill -9 "$rpid"; wait "$rpid" 2>/dev/null || true
    size=$(stat -c %s "$img")
    awk -v m="$mib" -v s="$size" -v d="$(echo "$t1 - $t0" | bc)" -v r="$(echo "$t3 - $t2" | bc)" \
        'BEGIN { printf "%8d %12.0f %10.3f %10.3f %12.2f\n", m, s, d, r, (m / 1024) / d }'
    rm -f "$img"
done
# A tree of TREE_PROCS processes of TREE_MIB each, against one process of
# their total (issue 9: about the same cost).
tree_procs=${BENCH_TREE_PROCS:-8}
tree_mib=${BENCH_TREE_MIB:-64}
for shape in "1 $((tree_procs * tree_mib))" "$tree_procs $tree_mib"; do
    set -- $shape
    procs=$1 mib=$2
    img=$dir/tree-$procs.img
    rm -f "$img" "$dir/out"
    LD_PRELOAD=$lib MIGRATE_IMAGE=$img MIGRATE_AFTER_DUMP=exit MIGRATE_CHILDREN=tree \
        "$dir/subject" "$mib" "$procs" > "$dir/out" &
    pid=$!
    until grep -q ready "$dir/out" 2>/dev/null; do sleep 0.01; done
    t0=$(now)
    kill -USR2 "$pid"
    wait "$pid"
    t1=$(now)
    rm -f "$dir/out2"
    t2=$(now)
    MIGRATE_RESTORE=$img LD_PRELOAD=$lib "$dir/subject" > "$dir/out2" &
    rpid=$!
    until grep -q sum "$dir/out2" 2>/dev/null; do sleep 0.005; done
    t3=$(now)
    # Forwarded to the root; with it the namespace and every process go.
    kill -TERM "$rpid"; wait "$rpid" 2>/dev/null || true
    size=$(stat -c %s "$img")
    awk -v p="$procs" -v m="$mib" -v s="$size" -v d="$(echo "$t1 - $t0" | bc)" -v r="$(echo "$t3 - $t2" | bc)" \
        'BEGIN { printf "%3d x %4d MiB %12.0f %10.3f %10.3f\n", p, m, s, d, r }'
    rm -f "$img"
done
echo "(dump: signal to image complete, fsync included; restore: relaunch to the restored process's first line,"
echo " which includes checking every page checksum and the app's own 1 s sleep being cut short by EINTR)"
