#!/bin/sh
# /init of the flaxdrm VM initramfs (built by tests/vm/run.sh, busybox-static).
# Loads the virtio/9p modules, mounts the host's root read-only over 9p
# (mount_tag hostroot) and the per-run control directory (mount_tag vmctl) at
# /run/flaxdrm-vm, then switch_root's into the host root and runs the stage-2
# script that run.sh left in the control directory (tests/vm/guest.sh).
export PATH=/bin

say() { echo "flaxdrm-vm(initramfs): $*"; }
die() {
	say "FATAL: $*"
	echo "FLAXDRM_VM_INITRAMFS_FAILED" # run.sh looks for this marker
	poweroff -f
	sleep 10
}

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev

while read -r m; do
	[ -n "$m" ] || continue
	insmod "/modules/$m" || die "insmod $m failed"
done </modules/order

# msize: large requests make 9p reads of big binaries/libraries much faster.
# The read-only root uses cache=loose (the host root is not expected to change
# under a running VM); the control dir has no cache so the host sees writes live.
opts_ro="trans=virtio,version=9p2000.L,msize=512000,ro,cache=loose"
opts_rw="trans=virtio,version=9p2000.L,msize=512000"
mkdir -p /newroot
i=0
until mount -t 9p -o "$opts_ro" hostroot /newroot 2>/tmp.err; do
	i=$((i + 1))
	[ $i -lt 50 ] || die "cannot mount the host root (9p tag hostroot): $(cat /tmp.err)"
	sleep 0.1
done
mount -t tmpfs -o mode=0755,nosuid,nodev run /newroot/run || die "tmpfs /run"
mkdir -p /newroot/run/flaxdrm-vm
mount -t 9p -o "$opts_rw" vmctl /newroot/run/flaxdrm-vm || die "cannot mount the control dir (9p tag vmctl)"
[ -r /newroot/run/flaxdrm-vm/guest.sh ] || die "no guest.sh in the control dir"

mount --move /dev /newroot/dev || die "move /dev"
mount --move /proc /newroot/proc || die "move /proc"
mount --move /sys /newroot/sys || die "move /sys"

# shellcheck disable=SC2093 # die only runs if the exec fails
exec switch_root /newroot /bin/bash /run/flaxdrm-vm/guest.sh
die "switch_root failed"
