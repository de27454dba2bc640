#!/usr/bin/env bash
# Prepares the second box the cross-kernel tests restore on: Debian's 6.1
# kernel, booted by QEMU's software emulation (TCG: this machine's /dev/kvm
# boots no stock kernel), with an initramfs that mounts this machine's `/`
# read-only over 9p under a tmpfs overlay and switch_roots into it.
#
#   tests/guest/prepare.sh [DIR]     (default: target/guest)
#
# Leaves DIR/vmlinux (the ELF kernel, booted through its PVH entry point:
# half the time of the bzImage), DIR/initramfs.cpio.gz and DIR/kernel (its
# release). The kernel package is fetched with `apt-get download` and
# unpacked with `dpkg -x`: nothing is installed. Needs qemu-system-x86,
# busybox-static, kmod, xz-utils, cpio (installed by .ci/run), and a
# package index that lists Debian 12's kernels.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
out=${1:-$root/target/guest}
mkdir -p "$out"
out=$(cd "$out" && pwd)
# One preparation at a time (tests run in parallel); the others wait.
exec 9> "$out/.lock"
flock 9
# Prepared already, with the current init (a changed init makes it again).
[ -s "$out/vmlinux" ] && [ "$out/initramfs.cpio.gz" -nt "$root/tests/guest/init" ] && exit 0

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"

# The newest 6.1 kernel the package index has (an empty index is
# refreshed when we may).
find_pkg() {
    apt-cache search --names-only '^linux-image-6\.1\.0-[0-9]+-amd64-unsigned$' |
        awk '{print $1}' | sort -V | tail -n 1
}
pkg=$(find_pkg)
if [ -z "$pkg" ] && [ "$(id -u)" = 0 ]; then
    apt-get update -q >/dev/null 2>&1 || true
    pkg=$(find_pkg)
fi
[ -n "$pkg" ] || { echo "prepare: no linux-image-6.1 package in the index (apt-get update?)" >&2; exit 1; }
apt-get download -q "$pkg" >/dev/null 2>&1 || apt-get download "$pkg"
dpkg -x ./*.deb pkg
kver=$(ls pkg/lib/modules)

# vmlinuz is a bzImage holding an xz stream: the ELF kernel is inside.
off=$(grep -abo $'\xfd7zXZ\x00' "pkg/boot/vmlinuz-$kver" | head -n 1 | cut -d: -f1)
tail -c +$((off + 1)) "pkg/boot/vmlinuz-$kver" | xz -dc --single-stream > vmlinux 2>/dev/null || true
head -c 4 vmlinux | grep -q ELF || { echo "prepare: no ELF kernel inside vmlinuz-$kver" >&2; exit 1; }

# The initramfs: busybox and the modules for 9p over virtio and overlayfs.
mkdir -p initrd/{bin,dev,proc,sys,host,rw,newroot,modules}
cp "$(command -v busybox)" initrd/bin/busybox
! ldd initrd/bin/busybox >/dev/null 2>&1 ||
    { echo "prepare: busybox is not static (install busybox-static)" >&2; exit 1; }
/usr/sbin/depmod -b pkg "$kver"
mods=$(for m in virtio_pci 9pnet_virtio 9p overlay virtio_net; do
    /usr/sbin/modprobe -d pkg -S "$kver" --show-depends "$m"; done |
    awk '$1 == "insmod" {print $2}' | awk '!seen[$0]++')
: > initrd/modules/order
for m in $mods; do
    cp "$m" initrd/modules/
    echo "$(basename "$m")" >> initrd/modules/order
done
cp "$root/tests/guest/init" initrd/init
chmod 0755 initrd/init
(cd initrd && find . | cpio -o -H newc --quiet | gzip -1) > initramfs.cpio.gz

mv vmlinux initramfs.cpio.gz "$out/"
echo "$kver" > "$out/kernel"
