#!/usr/bin/env bash
# Runs a shell command in the 6.1 guest (see prepare.sh) and prints its
# output; exits with its status.
#
#   tests/guest/run.sh SHARE_DIR 'command'
#
# SHARE_DIR (absolute) is mounted read-write at the same path in the guest
# and is the command's working directory; the rest of this machine's `/` is
# there read-only (writes go to a tmpfs). The command runs as root with
# stdin from /dev/null; its stdout and stderr come back as this script's.
# GUEST_DIR names the prepared kernel (default: target/guest);
# GUEST_TIMEOUT bounds the whole run in seconds (default 300).
# GUEST_CPU is QEMU's CPU model (default max: no AVX-512, XSAVEC or SHA-NI,
# but MPX and PKU, which this machine lacks).
# GUEST_SSH_PORT, if set, gives the guest a network card on QEMU's user
# network, isolated (restrict=on: no traffic leaves QEMU), with this
# machine's 127.0.0.1:PORT forwarded to the guest's port 22; the command
# brings eth0 up itself (10.0.2.15/24) and starts an sshd.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
dir=${GUEST_DIR:-$root/target/guest}
share=$1
cmd=$2
case $share in /*) ;; *) echo "run.sh: SHARE_DIR must be absolute" >&2; exit 2 ;; esac
[ -s "$dir/vmlinux" ] || { echo "run.sh: $dir/vmlinux missing; run tests/guest/prepare.sh" >&2; exit 2; }
printf '%s\n' "$cmd" > "$share/guest-cmd"
net=()
if [ -n "${GUEST_SSH_PORT:-}" ]; then
    net=(-netdev "user,id=n0,restrict=on,hostfwd=tcp:127.0.0.1:$GUEST_SSH_PORT-:22"
         -device virtio-net-pci,netdev=n0)
fi
rm -f "$share/guest-out" "$share/guest-err" "$share/guest-status"
timeout "${GUEST_TIMEOUT:-300}" qemu-system-x86_64 \
    -accel tcg,thread=multi -cpu "${GUEST_CPU:-max}" -smp 2 -m 2048 \
    -nographic -no-reboot -nodefaults -serial stdio \
    -kernel "$dir/vmlinux" -initrd "$dir/initramfs.cpio.gz" \
    -append "console=ttyS0 quiet panic=-1 migrate.share=$share" \
    -virtfs "local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap" \
    -virtfs "local,path=$share,mount_tag=share,security_model=none,multidevs=remap" \
    "${net[@]}" \
    > "$share/guest-console" 2>&1 || true
if [ ! -f "$share/guest-status" ]; then
    echo "run.sh: the guest did not finish; its console:" >&2
    tail -n 30 "$share/guest-console" >&2
    exit 3
fi
cat "$share/guest-out"
cat "$share/guest-err" >&2
exit "$(cat "$share/guest-status")"
