# Issue 9, Done-when 1: a bash script that forks children every step
# (a command substitution running the external `date`, and `sleep`) and
# feeds a long-lived child (a subshell, through process substitution)
# through a pipe. The child sums what it reads and prints one line at end
# of file; the script waits for it before its last line, so the output's
# order does not depend on scheduling.
#
# Protocol: "start", "ready", "step N DATE" per step, "child got N
# sum=S", "done N". MIGRATE_TEST_NOSLEEP drops the pacing (sleep 0 still
# runs the external sleep).
set -e
echo start
exec 3> >(n=0; sum=0; while read -r i; do n=$((n + 1)); sum=$((sum * 31 + i)); sum=$((sum % 1000003)); done; echo "child got $n sum=$sum")
child=$!
pause=0.05
[ -n "$MIGRATE_TEST_NOSLEEP" ] && pause=0
echo ready
for i in $(seq 1 40); do
    d=$(date -u -d "@$((i * 86400))" +%F)
    sleep "$pause"
    echo "$i" >&3
    echo "step $i $d"
done
exec 3>&-
wait "$child"
echo "done $i"
