#!/bin/bash
# Stage 2 of the flaxdrm VM (see tests/vm/run.sh): runs as PID 1 inside the
# guest after the initramfs switch_root'ed into the host's read-only root.
# run.sh copies this file into the per-run control directory, which the guest
# sees at /run/flaxdrm-vm (9p tag vmctl, read-write, no cache):
#   config   shell variables FVM_* (printf %q), written by run.sh
#   cmd      the user command, NUL-separated argv
#   env      extra environment for the command and the engine, NUL-separated
# and writes back:
#   status   key=value lines; run.sh parses them ("done=1" comes last)
#   output.log  stdout+stderr of --root-cmd and CMD (run.sh streams it)
#   engine.log  stdout+stderr of the engine
#   dmesg.log   the full kernel log at the end of the run
# Messages of this script go to the serial console and never contain the
# words that run.sh's kernel-log check looks for.
CTL=/run/flaxdrm-vm
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export LANG=C.UTF-8
umask 022

# Simple commands go through busybox-static when the host has it: under TCG
# every exec of a dynamically linked tool costs 0.1-0.5 s (ld.so, relocations).
BB=/bin/busybox
[ -x "$BB" ] || BB=
B() { if [ -n "$BB" ]; then "$BB" "$@"; else "$@"; fi; }
nap() { B sleep "$1"; }

say() { local up; read -r up _ </proc/uptime; echo "flaxdrm-vm: [$up] $*"; }
put() { echo "$1=$2" >>"$CTL/status"; }

poweroff_now() {
	B sync
	/bin/busybox poweroff -f 2>/dev/null
	echo o >/proc/sysrq-trigger
	nap 30
}

# shellcheck source=/dev/null
. "$CTL/config" || { say "cannot read $CTL/config"; poweroff_now; }
if [ "${FVM_TRACE:-0}" = 1 ]; then
	PS4='+ [$EPOCHREALTIME] '
	set -x
fi
: >"$CTL/status"
: >"$CTL/output.log"
put booted 1
read -r osrelease </proc/sys/kernel/osrelease
say "stage 2 up (kernel $osrelease)"

mount_fs() { # type source target options
	[ -d "$3" ] || B mkdir -p "$3"
	B mount -t "$1" -o "$4" "$2" "$3" || say "mount $1 on $3 failed"
}
mount_fs tmpfs tmpfs /tmp mode=1777,nosuid,nodev
mount_fs devpts devpts /dev/pts gid=5,mode=620,ptmxmode=666
mount_fs tmpfs tmpfs /dev/shm mode=1777,nosuid,nodev
mount_fs debugfs debugfs /sys/kernel/debug mode=0700
B ln -s /proc/self/fd /dev/fd
for i in 0:stdin 1:stdout 2:stderr; do B ln -s "/proc/self/fd/${i%%:*}" "/dev/${i#*:}"; done
echo flaxdrm-vm >/proc/sys/kernel/hostname

# The current directory of the host, read-write at the same path. The host's
# files there are mostly root's, so with FVM_CWD_MODE=bindfs the 9p mount is
# re-exported through bindfs with root's files shown as the test user's and
# the user's new files stored as root's on the host: the unprivileged command
# can write anywhere in its cwd, as it could in a checkout of its own.
cwd_fail() {
	say "cannot mount the shared directory $FVM_CWD: $1"
	put setup_failed "mount-cwd"
	poweroff_now
}
# The cwd exists on the host root, unless it is under /tmp or /run.
[ -d "$FVM_CWD" ] || B mkdir -p "$FVM_CWD"
if [ "$FVM_CWD_MODE" = bindfs ]; then
	B mkdir -p /run/flaxdrm-vm-cwd
	B mount -t 9p -o "$FVM_CWD_OPTS" cwd /run/flaxdrm-vm-cwd || cwd_fail 9p
	modprobe fuse || cwd_fail "modprobe fuse"
	bindfs -o allow_other,dev,suid,nonempty,big_writes,max_write=1048576,max_read=1048576 --map="0/$FVM_UID:@0/@$FVM_UID" /run/flaxdrm-vm-cwd "$FVM_CWD" ||
		cwd_fail bindfs
else
	B mount -t 9p -o "$FVM_CWD_OPTS" cwd "$FVM_CWD" || cwd_fail 9p
fi
say "$FVM_CWD mounted ($FVM_CWD_MODE)"

# The unprivileged user: /etc/passwd and /etc/group are the host's with any
# uid/gid $FVM_UID entry replaced, bind-mounted over the read-only originals.
B mkdir -p /run/flaxdrm-vm-etc
B awk -F: -v uid="$FVM_UID" -v user="$FVM_USER" '
	$3 != uid && $1 != user { print }
	END { printf "%s:x:%d:%d:flaxdrm VM test user:%s:/bin/bash\n", user, uid, uid, "/tmp/home" }
' /etc/passwd >/run/flaxdrm-vm-etc/passwd
B awk -F: -v gid="$FVM_UID" -v user="$FVM_USER" -v groups=",$FVM_GROUP_NAMES," '
	$3 == gid || $1 == user { next }
	index(groups, "," $1 ",") { $4 = ($4 == "" ? user : $4 "," user) }
	{ print }
	END { printf "%s:x:%d:\n", user, gid }
' OFS=: /etc/group >/run/flaxdrm-vm-etc/group
B mount -o bind /run/flaxdrm-vm-etc/passwd /etc/passwd
B mount -o bind /run/flaxdrm-vm-etc/group /etc/group
B mkdir -p /tmp/home "/run/user/$FVM_UID"
B chown "$FVM_UID:$FVM_UID" /tmp/home "/run/user/$FVM_UID"
B chmod 0700 "/run/user/$FVM_UID"

# Environment for the engine and the command: a clean one plus the host's
# pass-through variables that run.sh collected.
base_env=(LANG=C.UTF-8 TERM=dumb FLAXDRM_IN_VM=1)
extra_env=()
if [ -s "$CTL/env" ]; then
	mapfile -d '' extra_env <"$CTL/env"
fi
root_env=("${base_env[@]}" HOME=/root USER=root LOGNAME=root
	PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin "${extra_env[@]}")
user_env=("${base_env[@]}" "HOME=/tmp/home" "USER=$FVM_USER" "LOGNAME=$FVM_USER"
	SHELL=/bin/bash PATH=/usr/local/bin:/usr/bin:/bin "XDG_RUNTIME_DIR=/run/user/$FVM_UID"
	"${extra_env[@]}")
as_user() {
	setpriv --reuid="$FVM_UID" --regid="$FVM_UID" --groups="$FVM_GROUP_IDS" \
		--inh-caps=-all -- env -i "${user_env[@]}" "$@"
}

# flaxdrm.ko and the in-tree modules it depends on.
kmod_loaded=0
if [ -n "$FVM_KMOD" ]; then
	deps=$(modinfo -F depends "$FVM_KMOD" 2>/dev/null)
	deps=${deps//,/ }
	ok=1
	if [ -n "$deps" ]; then
		# shellcheck disable=SC2086
		modprobe -a $deps || { say "modprobe $deps failed"; ok=0; }
	fi
	# shellcheck disable=SC2086 # FVM_KMOD_ARGS is word-split on purpose
	if [ $ok = 1 ] && insmod "$FVM_KMOD" $FVM_KMOD_ARGS; then
		kmod_loaded=1
		put kmod loaded
		# Debian's udev rules: card* root:video 0660, renderD* root:render 0666.
		for n in /dev/dri/card*; do
			[ -e "$n" ] && B chown root:video "$n" && B chmod 0660 "$n"
		done
		for n in /dev/dri/renderD*; do
			[ -e "$n" ] && { B chown root:render "$n" 2>/dev/null; B chmod 0666 "$n"; }
		done
		say "flaxdrm.ko loaded (deps: ${deps:-none}); nodes: $(echo /dev/dri/*)"
	else
		say "loading $FVM_KMOD failed"
		put kmod failed
	fi
else
	put kmod absent
fi

# The engine, as root, in the background; wait for its ready file.
engine_pid=
engine_ok=1
if [ "$kmod_loaded" = 1 ] && [ -n "$FVM_ENGINE" ]; then
	B mkdir -p /run/flaxdrm
	ready=/run/flaxdrm/engine.ready
	# shellcheck disable=SC2086 # FVM_ENGINE_ARGS is word-split on purpose
	(cd / && exec setsid env -i "${root_env[@]}" "$FVM_ENGINE" --ready-file "$ready" \
		$FVM_ENGINE_ARGS) </dev/null >"$CTL/engine.log" 2>&1 &
	engine_pid=$!
	t0=$SECONDS
	while [ ! -e "$ready" ]; do
		if ! kill -0 "$engine_pid" 2>/dev/null; then
			wait "$engine_pid"
			put engine "exited-before-ready:$?"
			engine_ok=0
			break
		fi
		if [ $((SECONDS - t0)) -ge "$FVM_ENGINE_TIMEOUT" ]; then
			put engine "not-ready-after:${FVM_ENGINE_TIMEOUT}s"
			engine_ok=0
			break
		fi
		nap 0.2
	done
	if [ $engine_ok = 1 ]; then
		put engine ready
		say "engine ready after $((SECONDS - t0)) s (pid $engine_pid)"
	fi
elif [ -n "$FVM_ENGINE" ]; then
	put engine "skipped-no-kmod"
else
	put engine skipped
fi

run_ok=1
[ "$kmod_loaded" = 1 ] || [ -z "$FVM_KMOD" ] || run_ok=0
[ $engine_ok = 1 ] || run_ok=0

# Test-only: a root command before the user command (harness self-test).
if [ $run_ok = 1 ] && [ -n "$FVM_ROOT_CMD" ]; then
	(cd "$FVM_CWD" && exec env -i "${root_env[@]}" /bin/sh -c "$FVM_ROOT_CMD") \
		</dev/null >>"$CTL/output.log" 2>&1
	put root_cmd $?
fi

if [ $run_ok = 1 ]; then
	mapfile -d '' cmd <"$CTL/cmd"
	t0=$SECONDS
	if [ "${FVM_AS_ROOT:-0}" = 1 ]; then
		say "running as root in $FVM_CWD: ${cmd[*]}"
		B mkdir -p /tmp/root-home
		(cd "$FVM_CWD" && exec env -i "${root_env[@]}" HOME=/tmp/root-home "${cmd[@]}") \
			</dev/null >>"$CTL/output.log" 2>&1
	else
		say "running as uid $FVM_UID in $FVM_CWD: ${cmd[*]}"
		(cd "$FVM_CWD" && as_user "${cmd[@]}") </dev/null >>"$CTL/output.log" 2>&1
	fi
	rc=$?
	put cmd "$rc"
	put cmd_seconds $((SECONDS - t0))
	say "command exited with status $rc after $((SECONDS - t0)) s"
	# Leftover processes of the user would keep the device open.
	if as_user /bin/kill -0 -1 2>/dev/null; then
		say "killing processes the command left behind"
		as_user /bin/kill -KILL -1 2>/dev/null
		nap 0.5
	fi
else
	put cmd not-run
fi

# Stop the engine: it must still be alive and exit on SIGTERM.
if [ -n "$engine_pid" ]; then
	if ! kill -0 "$engine_pid" 2>/dev/null; then
		wait "$engine_pid"
		erc=$?
		[ $engine_ok = 1 ] && put engine_stop "died-early:$erc"
	else
		kill -TERM "$engine_pid"
		t0=$SECONDS
		while kill -0 "$engine_pid" 2>/dev/null && [ $((SECONDS - t0)) -lt 20 ]; do
			nap 0.2
		done
		if kill -0 "$engine_pid" 2>/dev/null; then
			kill -KILL "$engine_pid"
			wait "$engine_pid"
			put engine_stop "no-exit-on-sigterm"
		else
			wait "$engine_pid"
			put engine_stop "exited:$?"
		fi
	fi
fi

# The module must unload cleanly.
if [ "$kmod_loaded" = 1 ]; then
	rc=1
	for _ in 1 2 3 4 5; do
		if out=$(rmmod flaxdrm 2>&1); then
			rc=0
			break
		fi
		say "rmmod flaxdrm: $out"
		nap 1
	done
	put rmmod $rc
fi

if [ -w /sys/kernel/debug/kmemleak ]; then
	echo scan >/sys/kernel/debug/kmemleak
	cat /sys/kernel/debug/kmemleak >"$CTL/kmemleak.log"
fi
dmesg >"$CTL/dmesg.log" 2>&1
B sync
B umount "$FVM_CWD" 2>/dev/null || B umount -l "$FVM_CWD"
if [ "$FVM_CWD_MODE" = bindfs ]; then
	B umount /run/flaxdrm-vm-cwd 2>/dev/null || B umount -l /run/flaxdrm-vm-cwd
fi
put "done" 1
say "powering off"
poweroff_now
