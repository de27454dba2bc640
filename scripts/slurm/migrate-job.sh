#!/bin/bash
# Runs a program under migrate in a Slurm batch job that outlives its time
# limit: when Slurm signals that the limit is near, the program is dumped
# and the job requeued; the next run of the job restores the newest image
# instead of starting over. The program sees nothing of it.
#
#   sbatch [SBATCH OPTIONS] scripts/slurm/migrate-job.sh PROGRAM [ARGS...]
#
# The #SBATCH lines below are defaults; options given to sbatch win. Slurm
# sends USR1 to this script (B:) some time before the limit (@SECONDS:
# leave enough time to write the image; Slurm may send it up to a minute
# early); --open-mode=append keeps the output of every run of the job in
# one file, which ends as an uninterrupted run's would.
#
# Settings (environment, exported to the job by sbatch):
#   MIGRATE             the migrate command (default: migrate on PATH)
#   MIGRATE_JOB_IMAGE   the image (default: migrate-job-$SLURM_JOB_ID.img in
#                       the submit directory; a shared filesystem if the
#                       job may restart on another node)
#   MIGRATE_JOB_SIGNAL  the signal Slurm sends (default USR1; match --signal)
#   MIGRATE_JOB_DUMP_TIMEOUT  how long the dump may take (default 5m)
#
# The job's exit status is the program's. A dump that fails leaves the
# program running (it says why on stderr) until the time limit ends the
# job; the last good image, if any, stays for a manual requeue.
#
#SBATCH --signal=B:USR1@120
#SBATCH --requeue
#SBATCH --open-mode=append
set -u

migrate=${MIGRATE:-migrate}
job=${SLURM_JOB_ID:?not in a Slurm job (run it with sbatch)}
image=${MIGRATE_JOB_IMAGE:-${SLURM_SUBMIT_DIR:-$PWD}/migrate-job-$job.img}
signal=${MIGRATE_JOB_SIGNAL:-USR1}
say() { echo "migrate-job: $*" >&2; }

if [ -f "$image" ]; then
    say "job $job run ${SLURM_RESTART_COUNT:-0}: restoring $image"
    restoring=1
    "$migrate" restore --image "$image" "$image" &
else
    restoring=
    [ $# -gt 0 ] || { say "no program given"; exit 2; }
    "$migrate" run --image "$image" -- "$@" &
fi
child=$!
requeued=

# Dumps the program, which ends once its image is complete; a program
# still starting (status 3: no status yet) is asked again.
dump() {
    local try rc
    for try in 1 2 3 4 5 6 7 8 9 10; do
        "$migrate" dump --exit --timeout "${MIGRATE_JOB_DUMP_TIMEOUT:-5m}" --image "$image" "$child" >&2
        rc=$?
        [ "$rc" = 3 ] && kill -0 "$child" 2>/dev/null || return "$rc"
        sleep 1
    done
    return "$rc"
}

on_signal() {
    say "job $job: the time limit is near; dumping to $image"
    if dump; then
        requeued=1
        if ! scontrol requeue "$job"; then
            say "job $job: scontrol requeue failed; $image stays (requeue the job or restore it by hand)"
            exit 1
        fi
    else
        say "job $job: the dump failed; the program goes on"
    fi
}
trap on_signal "$signal"

# `wait` returns early whenever the trapped signal comes: wait again
# until the program has ended.
while :; do
    wait "$child"
    status=$?
    [ "$status" -gt 128 ] && kill -0 "$child" 2>/dev/null || break
done
# A wait cut short by the signal as the program ended: its own status.
wait "$child" 2>/dev/null
rc=$?
[ "$rc" = 127 ] || status=$rc
if [ -n "$requeued" ]; then
    # Requeued: Slurm ends this run and starts the job again.
    say "job $job: requeued"
    while :; do sleep 60; done
fi
# A restore that failed (migrate restore's own statuses: bad arguments,
# the image refused, the library or migrate missing) leaves the image, the
# only copy of the program's progress, for another try (a program that
# itself ends with one of these keeps an image it no longer needs).
if [ -n "$restoring" ]; then
    case $status in
    2 | 6[5-9] | 7[0-2] | 126 | 127)
        say "job $job: the restore failed (status $status); $image stays (fix the cause and requeue the job, or restore it by hand)"
        exit "$status"
        ;;
    esac
fi
rm -f "$image"
exit "$status"
