#!/bin/bash
# tests/vm/run.sh: run a command inside a QEMU (TCG) guest of the Debian
# kernel, with flaxdrm.ko loaded and the engine running.
#
# usage: tests/vm/run.sh [options] CMD [ARG...]
#   --kernel VER      boot /boot/vmlinuz-VER with /lib/modules/VER
#                     (default: $KVER, else the newest installed 6.1 kernel)
#   --no-engine       do not start the engine (also: FLAXDRM_VM_ENGINE=0)
#   --no-kmod         do not load flaxdrm.ko (implies --no-engine)
#   --timeout SECS    kill the VM after SECS seconds (default 600,
#                     FLAXDRM_VM_TIMEOUT); a timeout fails the run (status 124)
#   --keep-log FILE   also copy the kernel console log (+ full dmesg) to FILE
#   --as-root         run CMD as root (HOME=/tmp/root-home) instead of the
#                     test user: for tests that play the engine themselves
#                     (usually with --no-engine)
#   --root-cmd CMD    TEST-ONLY: run `sh -c CMD` as root just before CMD
#                     (the harness self-test uses it to write to /dev/kmsg)
#   -q, --quiet       no progress messages from the harness (CMD output only)
#
# The guest: 2 vCPUs (-cpu max: SSE4.2/AVX2/FMA under TCG), 4 GiB
# (FLAXDRM_VM_MEM), the host's / read-only over 9p as its root, fresh /proc,
# /sys, /dev, /tmp, /run, and the current directory read-write over 9p at the
# same absolute path. The host's files there are root's, so by default
# (FLAXDRM_VM_CWD_MODE=bindfs, needs the bindfs package on the host) the guest
# re-exports that share through bindfs: root's files appear as the test
# user's, and files the user creates are root's on the host. With
# FLAXDRM_VM_CWD_MODE=9p the share is mounted directly (faster writes) and the
# user can write only where the host's permissions let uid 1000. flaxdrm.ko (build/kmod/VER/flaxdrm.ko, or
# $FLAXDRM_KMOD) is loaded after its dependencies; device nodes get Debian's
# udev modes (card* root:video 0660, renderD* 0666); the engine
# (build/release/userspace/flaxdrm-engine, or $FLAXDRM_ENGINE; extra args in
# $FLAXDRM_VM_ENGINE_ARGS) runs as root and must write its --ready-file within
# $FLAXDRM_VM_ENGINE_TIMEOUT s (default 300). CMD runs in the same cwd as user
# "flaxtest" (uid 1000, gid 1000, supplementary group video), HOME=/tmp/home,
# stdin /dev/null, a clean environment plus the host's FLAXDRM_*, GTEST_*,
# VK_*, MESA_*, LP_*, ASAN/UBSAN/LSAN_OPTIONS and CI, and FLAXDRM_IN_VM=1.
# Its stdout and stderr are streamed to run.sh's stdout.
#
# Exit status: CMD's status, unless the harness found a failure, which wins:
#   120  the kernel log has a WARNING/BUG/Oops/leak report (SPLAT_RE below)
#   121  rmmod flaxdrm failed (the module must unload cleanly)
#   122  the engine did not become ready, died during CMD, or ignored SIGTERM
#   123  the guest did not come up or did not finish (crash, panic, setup)
#   124  the VM ran into --timeout
#   125  harness usage or host-side error (no kernel, qemu failed to start)
# FLAXDRM_VM_SPLAT_IGNORE: an ERE; kernel lines matching it are not counted
# (only for known messages that are not bugs; every use needs a comment).
# The serial console goes to build/vm/last-console.log, the guest's full
# dmesg to build/vm/last-dmesg.log, the engine's output to
# build/vm/last-engine.log, CMD's output to build/vm/last-output.log; on
# failure the relevant part is printed.
set -u -o pipefail

SELF_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$SELF_DIR/../.." && pwd)
# make BUILD=DIR: the build tree (kmod/, release/, vm/) to use, default build/
BUILD_DIR=${BUILD:-${FLAXDRM_BUILD_DIR:-$ROOT/build}}
VMDIR=$BUILD_DIR/vm

# Lines in the kernel log that fail a run.
# "leaked" and "left at unload" are flaxdrm's own leak reports at rmmod.
SPLAT_RE='WARNING:|BUG:|Oops|general protection fault|refcount_t|kmemleak|unreferenced object|UBSAN:|KASAN:|Call Trace|possible circular locking|INFO: |Kernel panic|kernel BUG|[Ll]eaked|left at unload'

QUIET=0
say() { [ "$QUIET" = 1 ] || echo "run.sh: $*" >&2; }
err() { echo "run.sh: $*" >&2; }
usage() { sed -n '2,/^set -u/{/^set -u/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}" >&2; exit 125; }

kver=${KVER:-}
engine=${FLAXDRM_VM_ENGINE:-1}
kmod_wanted=1
timeout=${FLAXDRM_VM_TIMEOUT:-600}
keep_log=
root_cmd=
as_root=0
while [ $# -gt 0 ]; do
	case $1 in
	--kernel) kver=${2:?--kernel needs a version}; shift 2 ;;
	--kernel=*) kver=${1#*=}; shift ;;
	--no-engine) engine=0; shift ;;
	--no-kmod) kmod_wanted=0; engine=0; shift ;;
	--timeout) timeout=${2:?--timeout needs seconds}; shift 2 ;;
	--timeout=*) timeout=${1#*=}; shift ;;
	--keep-log) keep_log=${2:?--keep-log needs a file}; shift 2 ;;
	--keep-log=*) keep_log=${1#*=}; shift ;;
	--as-root) as_root=1; shift ;;
	--root-cmd) root_cmd=${2?--root-cmd needs a command}; shift 2 ;;
	--root-cmd=*) root_cmd=${1#*=}; shift ;;
	-q | --quiet) QUIET=1; shift ;;
	-h | --help) usage ;;
	--) shift; break ;;
	-*) err "unknown option $1"; usage ;;
	*) break ;;
	esac
done
[ $# -gt 0 ] || { err "no command given"; usage; }
[[ $timeout =~ ^[0-9]+$ ]] && [ "$timeout" -gt 0 ] || { err "bad --timeout '$timeout'"; exit 125; }

if [ -z "$kver" ]; then
	kver=$(ls /boot/vmlinuz-6.1.*-amd64 2>/dev/null | sed 's|.*/vmlinuz-||' | sort -V | tail -n1)
fi
kernel=/boot/vmlinuz-$kver
moddir=/lib/modules/$kver
[ -n "$kver" ] && [ -r "$kernel" ] || { err "no kernel image $kernel (install linux-image-amd64 or pass --kernel)"; exit 125; }
[ -d "$moddir" ] || { err "no module tree $moddir"; exit 125; }
command -v qemu-system-x86_64 >/dev/null || { err "qemu-system-x86_64 missing (apt install qemu-system-x86)"; exit 125; }
busybox=/bin/busybox
[ -x "$busybox" ] && ! ldd "$busybox" >/dev/null 2>&1 ||
	{ err "$busybox missing or not static (apt install busybox-static)"; exit 125; }

mkdir -p "$VMDIR" || exit 125

# ---------------------------------------------------------------- initramfs
# busybox + /init + the modules needed to mount 9p, rebuilt only when one of
# those inputs changes (the key is a hash over their contents).
INITRD_MODS=(virtio_pci 9pnet_virtio 9p)
build_initramfs() {
	local out=$VMDIR/initramfs-$kver.cpio
	local mods m key
	mods=$(for m in "${INITRD_MODS[@]}"; do modprobe -S "$kver" --show-depends "$m"; done 2>/dev/null |
		awk '$1 == "insmod" && !seen[$2]++ { print $2 }') || true
	[ -n "$mods" ] || { err "cannot resolve ${INITRD_MODS[*]} in $moddir"; return 1; }
	key=$({
		echo "v1 $kver"
		sha256sum "$busybox" "$SELF_DIR/initramfs-init.sh"
		for m in $mods; do sha256sum "$m"; done
	} | sha256sum | cut -d' ' -f1)
	INITRD=$out
	if [ -r "$out" ] && [ "$(cat "$out.key" 2>/dev/null)" = "$key" ]; then
		return 0
	fi
	say "building $out"
	local tmp
	tmp=$(mktemp -d "$VMDIR/initramfs.XXXXXX") || return 1
	(
		set -e
		mkdir -p "$tmp/root"/{bin,dev,proc,sys,newroot,modules}
		cp "$busybox" "$tmp/root/bin/busybox"
		for a in sh mount insmod mkdir sleep switch_root poweroff echo cat; do
			ln -s busybox "$tmp/root/bin/$a"
		done
		install -m 0755 "$SELF_DIR/initramfs-init.sh" "$tmp/root/init"
		for m in $mods; do
			local base
			base=$(basename "$m")
			case $m in
			*.ko.xz) xz -dc "$m" >"$tmp/root/modules/${base%.xz}"; base=${base%.xz} ;;
			*.ko.zst) zstd -qdc "$m" >"$tmp/root/modules/${base%.zst}"; base=${base%.zst} ;;
			*.ko.gz) gzip -dc "$m" >"$tmp/root/modules/${base%.gz}"; base=${base%.gz} ;;
			*) cp "$m" "$tmp/root/modules/$base" ;;
			esac
			echo "$base" >>"$tmp/root/modules/order"
		done
		(cd "$tmp/root" && find . -print0 | LC_ALL=C sort -z |
			cpio --null -o -H newc --quiet) >"$tmp/initramfs.cpio"
		mv -f "$tmp/initramfs.cpio" "$out"
		echo "$key" >"$out.key"
	) || { rm -rf "$tmp"; err "initramfs build failed"; return 1; }
	rm -rf "$tmp"
}
build_initramfs || exit 125

# ---------------------------------------------------------------- the run
kmod=${FLAXDRM_KMOD:-$BUILD_DIR/kmod/$kver/flaxdrm.ko}
if [ "$kmod_wanted" = 0 ]; then
	kmod=
elif [ ! -r "$kmod" ]; then
	err "WARNING: $kmod not built: running without flaxdrm.ko (and without the engine)"
	kmod=
fi
engine_bin=${FLAXDRM_ENGINE:-$BUILD_DIR/release/userspace/flaxdrm-engine}
if [ "$engine" = 0 ]; then
	engine_bin=
elif [ -z "$kmod" ]; then
	engine_bin=
elif [ ! -x "$engine_bin" ]; then
	err "WARNING: $engine_bin not built: running without the engine"
	engine_bin=
fi

cwd_mode=${FLAXDRM_VM_CWD_MODE:-bindfs}
case $cwd_mode in
bindfs) command -v bindfs >/dev/null || {
	err "WARNING: bindfs missing (apt install bindfs): the command can only write where the host lets uid 1000 write"
	cwd_mode=9p
} ;;
9p) ;;
*) err "FLAXDRM_VM_CWD_MODE must be bindfs or 9p"; exit 125 ;;
esac

cwd=$(pwd -P)
case $cwd in
/ | /proc | /proc/* | /sys | /sys/* | /dev | /dev/* | /tmp | /run | /run/flaxdrm* | /run/user)
	err "cannot share $cwd into the guest (the guest mounts its own there)"; exit 125 ;;
esac
[ -w "$cwd" ] || { err "$cwd is not writable"; exit 125; }

rundir=$(mktemp -d "${TMPDIR:-/tmp}/flaxdrm-vm.XXXXXX") || exit 125
qemu_pid=
tail_pid=
cleanup() {
	[ -n "$tail_pid" ] && kill "$tail_pid" 2>/dev/null
	[ -n "$qemu_pid" ] && kill "$qemu_pid" 2>/dev/null
	if [ "${FLAXDRM_VM_KEEP_RUNDIR:-0}" = 1 ]; then
		err "run directory kept: $rundir"
	else
		rm -rf "$rundir"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

install -m 0644 "$SELF_DIR/guest.sh" "$rundir/guest.sh"
# A snapshot of the module, so that a rebuild during the boot cannot hand the
# guest a half-written file; the guest loads /run/flaxdrm-vm/flaxdrm.ko.
kmod_guest=
if [ -n "$kmod" ]; then
	cp "$kmod" "$rundir/flaxdrm.ko" || { err "cannot copy $kmod"; exit 125; }
	kmod_guest=/run/flaxdrm-vm/flaxdrm.ko
	say "flaxdrm.ko: $kmod ($(date -r "$kmod" '+%F %T'))"
fi
video_gid=$(getent group video | cut -d: -f3)
{
	printf 'FVM_CWD=%q\n' "$cwd"
	printf 'FVM_CWD_OPTS=%q\n' "trans=virtio,version=9p2000.L,msize=512000,${FLAXDRM_VM_CWD_CACHE:-cache=mmap}"
	printf 'FVM_CWD_MODE=%q\n' "$cwd_mode"
	printf 'FVM_UID=%q\n' 1000
	printf 'FVM_USER=%q\n' flaxtest
	printf 'FVM_GROUP_NAMES=%q\n' video
	printf 'FVM_GROUP_IDS=%q\n' "${video_gid:-44}"
	printf 'FVM_KMOD=%q\n' "$kmod_guest"
	printf 'FVM_ENGINE=%q\n' "$engine_bin"
	# Under TCG, lavapipe compiles a new pipeline in 10-30 s, so the first
	# job using it needs more than the kernel's default 10 s; the engine
	# then needs no warm-up before attaching (which cost ~70 s per boot).
	printf 'FVM_KMOD_ARGS=%q\n' "${FLAXDRM_VM_KMOD_ARGS-job_timeout_ms=120000}"
	printf 'FVM_ENGINE_ARGS=%q\n' "${FLAXDRM_VM_ENGINE_ARGS---no-warm-up}"
	printf 'FVM_ENGINE_TIMEOUT=%q\n' "${FLAXDRM_VM_ENGINE_TIMEOUT:-300}"
	printf 'FVM_ROOT_CMD=%q\n' "$root_cmd"
	printf 'FVM_TRACE=%q\n' "${FLAXDRM_VM_TRACE:-0}"
	printf 'FVM_AS_ROOT=%q\n' "$as_root"
} >"$rundir/config"
printf '%s\0' "$@" >"$rundir/cmd"
env -0 | grep -zE '^(FLAXDRM_[A-Za-z0-9_]*|GTEST_[A-Za-z0-9_]*|VK_[A-Za-z0-9_]*|MESA_[A-Za-z0-9_]*|LP_[A-Za-z0-9_]*|ASAN_OPTIONS|UBSAN_OPTIONS|LSAN_OPTIONS|CI)=' \
	>"$rundir/env" || true
: >"$rundir/output.log"

console=$rundir/console.log
append="console=ttyS0,115200 panic=-1 rdinit=/init mitigations=off"
append+=" i8042.noaux=1 i8042.nokbd=1 8250.nr_uarts=1"
# TCG vCPUs on a busy host can be starved for many seconds: raise the RCU
# stall and soft-lockup thresholds (default 21 s and 20 s) so that only real
# stalls are reported; the hung-task check stays at its 120 s default.
append+=" rcupdate.rcu_cpu_stall_timeout=100 watchdog_thresh=50 ${FLAXDRM_VM_APPEND:-}"
# shellcheck disable=SC2054 # the commas are qemu option syntax
qemu=(qemu-system-x86_64
	-name flaxdrm-vm -no-user-config -nodefaults -display none -no-reboot
	-machine pc -accel tcg,thread=multi -cpu max -smp 2 -m "${FLAXDRM_VM_MEM:-4G}"
	-kernel "$kernel" -initrd "$INITRD" -append "$append"
	-chardev "file,id=con,path=$console" -serial chardev:con
	-monitor none
	-device virtio-rng-pci
	-virtfs local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap
	-virtfs "local,path=$rundir,mount_tag=vmctl,security_model=none"
	-virtfs "local,path=$cwd,mount_tag=cwd,security_model=none,multidevs=remap")

say "booting $kernel (TCG, 2 vCPUs, timeout ${timeout}s): $*"
t_start=$(date +%s.%N)
timeout -k 10 "$timeout" "${qemu[@]}" </dev/null >"$rundir/qemu.log" 2>&1 &
qemu_pid=$!
tail -n +1 -s 0.2 -F --pid="$qemu_pid" "$rundir/output.log" 2>/dev/null &
tail_pid=$!
wait "$qemu_pid"
qrc=$?
qemu_pid=
wait "$tail_pid" 2>/dev/null
tail_pid=
elapsed=$(echo "$(date +%s.%N) - $t_start" | bc)
elapsed=$(printf '%.1f' "$elapsed")

# ---------------------------------------------------------------- verdict
cp -f "$console" "$VMDIR/last-console.log" 2>/dev/null
cp -f "$rundir/output.log" "$VMDIR/last-output.log" 2>/dev/null
if [ -f "$rundir/engine.log" ]; then
	cp -f "$rundir/engine.log" "$VMDIR/last-engine.log"
else
	rm -f "$VMDIR/last-engine.log"
fi
if [ -f "$rundir/dmesg.log" ]; then
	cp -f "$rundir/dmesg.log" "$VMDIR/last-dmesg.log"
else
	rm -f "$VMDIR/last-dmesg.log"
fi
if [ -n "$keep_log" ]; then
	{
		cat "$console"
		if [ -f "$rundir/dmesg.log" ]; then
			echo "==== full dmesg at the end of the run ===="
			cat "$rundir/dmesg.log"
		fi
	} >"$keep_log" || err "cannot write $keep_log"
fi

declare -A st=()
if [ -f "$rundir/status" ]; then
	while IFS='=' read -r k v; do
		[ -n "$k" ] && st[$k]=$v
	done <"$rundir/status"
fi

show_console_tail() {
	err "---- last ${1:-40} lines of the console ($VMDIR/last-console.log) ----"
	tail -n "${1:-40}" "$console" | sed 's/^/  | /' >&2
}

rc=0
fail() { # status message
	err "FAIL: $2"
	[ "$rc" != 0 ] || rc=$1
}

# Only kernel lines count: all of dmesg.log (the guest's dmesg at the end),
# and the console's printk lines ("[ seconds] ...") for what came after it or
# when the guest never got there; not the messages of guest.sh or its tools.
splats=$({
	cat "$rundir/dmesg.log" "$rundir/kmemleak.log" 2>/dev/null
	grep -E '^\[ *[0-9]+\.[0-9]+\]' "$console"
} | tr -d '\r' | grep -E -- "$SPLAT_RE" | { if [ -n "${FLAXDRM_VM_SPLAT_IGNORE:-}" ]; then
	grep -v -E -- "$FLAXDRM_VM_SPLAT_IGNORE"; else cat; fi; } | awk '!seen[$0]++' | head -n 20)

if [ "$qrc" = 124 ] || [ "$qrc" = 137 ]; then
	fail 124 "the VM timed out after ${timeout}s (--timeout / FLAXDRM_VM_TIMEOUT); last status: $(tr '\n' ' ' <"$rundir/status" 2>/dev/null)"
	show_console_tail 60
elif grep -q FLAXDRM_VM_INITRAMFS_FAILED "$console" 2>/dev/null; then
	fail 123 "the initramfs could not set up the guest"
	show_console_tail 40
elif [ "${st[done]:-}" != 1 ]; then
	if [ -z "${st[booted]:-}" ]; then
		fail 123 "the guest did not boot (qemu status $qrc)"
		sed 's/^/  qemu: /' "$rundir/qemu.log" >&2
	elif [ -n "${st[setup_failed]:-}" ]; then
		fail 123 "guest setup failed: ${st[setup_failed]}"
	else
		fail 123 "the guest stopped before finishing (kernel crash or panic?)"
	fi
	show_console_tail 60
fi

if [ -n "$splats" ]; then
	fail 120 "the kernel log has warnings, oopses or leak reports:"
	echo "$splats" | sed 's/^/  ! /' >&2
	first=$(echo "$splats" | head -n1)
	for f in "$rundir/dmesg.log" "$console"; do
		[ -f "$f" ] || continue
		n=$(grep -n -F -- "$first" "$f" | head -n1 | cut -d: -f1)
		[ -n "$n" ] || continue
		err "---- kernel log from the first match ($VMDIR/last-$( [ "$f" = "$console" ] && echo console || echo dmesg).log:$n) ----"
		sed -n "$((n > 5 ? n - 5 : 1)),$((n + 40))p" "$f" | sed 's/^/  | /' >&2
		break
	done
fi

case ${st[kmod]:-} in
failed) fail 123 "loading $kmod failed"; grep -E 'flaxdrm|Unknown symbol|disagrees' "$console" | tail -n 20 | sed 's/^/  | /' >&2 ;;
esac

case ${st[engine]:-} in
"" | ready | skipped | skipped-no-kmod) ;;
*) fail 122 "the engine did not become ready (${st[engine]})" ;;
esac
case ${st[engine_stop]:-} in
"") ;;
exited:*) [ "${st[engine_stop]}" = exited:0 ] || say "note: the engine exited with status ${st[engine_stop]#exited:} on SIGTERM" ;;
died-early:*) fail 122 "the engine died while CMD ran (status ${st[engine_stop]#died-early:})" ;;
no-exit-on-sigterm) fail 122 "the engine did not exit within 20 s of SIGTERM (killed)" ;;
esac
if [ "$rc" = 122 ] && [ -s "$rundir/engine.log" ]; then
	err "---- engine log (last 40 lines) ----"
	tail -n 40 "$rundir/engine.log" | sed 's/^/  | /' >&2
fi

if [ -n "${st[rmmod]:-}" ] && [ "${st[rmmod]}" != 0 ]; then
	fail 121 "rmmod flaxdrm failed: the module did not unload cleanly"
	grep -E 'rmmod|flaxdrm' "$console" | tail -n 10 | sed 's/^/  | /' >&2
fi

if [ -n "${st[root_cmd]:-}" ] && [ "${st[root_cmd]}" != 0 ]; then
	fail 125 "--root-cmd exited with status ${st[root_cmd]}"
fi

cmd_rc=${st[cmd]:-}
if [ "$rc" = 0 ]; then
	if [[ $cmd_rc =~ ^[0-9]+$ ]]; then
		rc=$cmd_rc
		say "done in ${elapsed}s: command status $cmd_rc"
	else
		fail 123 "the command did not run (${cmd_rc:-no status})"
		show_console_tail 40
	fi
else
	err "command status: ${cmd_rc:-none}; VM time ${elapsed}s; harness status $rc"
fi
exit "$rc"
