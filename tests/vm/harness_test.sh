#!/bin/bash
# tests/vm/harness_test.sh: self-test of the VM harness tests/vm/run.sh.
# Runs on the HOST (ctest label "vmharness"; tests/vm/run-tests.sh skips it).
# Each case boots a VM (10-20 s under TCG on an idle host; only the second
# one starts the engine); the whole test takes about two minutes. Proves that:
#   a) CMD's exit status comes back (false -> 1, exit 7 -> 7);
#   b) CMD runs as uid 1000 in group video, HOME=/tmp/home, stdin /dev/null,
#      and its output is streamed to run.sh's stdout;
#   c) the cwd is shared read-write at the same path (the guest writes files
#      the host reads; run from a scratch directory, not the repo);
#   d) a kernel splat fails the run: a "WARNING:" line written to /dev/kmsg
#      as root (--root-cmd) gives status 120;
#   e) a kernel crash (sysrq c) fails the run (120/123), a hung command runs
#      into --timeout (124);
#   f) with flaxdrm.ko built: device nodes have Debian's modes, and a
#      process that keeps the device open makes rmmod fail (121);
#   g) with flaxdrm.ko built: the engine runs as root with --ready-file and
#      CMD waits for it; an engine that never gets ready, or dies while CMD
#      runs, fails the run (122). These cases use a fake engine (a shell
#      script, $FLAXDRM_ENGINE) so they test the harness, not the engine.
# usage: tests/vm/harness_test.sh [--quick]   (--quick: only a-d)
set -u -o pipefail

SELF_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$SELF_DIR/../.." && pwd)
RUN=$SELF_DIR/run.sh
quick=0
[ "${1:-}" = --quick ] && quick=1

mkdir -p "$ROOT/build/vm"
scratch=$(mktemp -d "$ROOT/build/vm/harness-test.XXXXXX") || exit 1
trap 'rm -rf "$scratch"' EXIT
cd "$scratch" || exit 1

n=0
failures=0
ok() { n=$((n + 1)); echo "ok $n - $1"; }
not_ok() { n=$((n + 1)); failures=$((failures + 1)); echo "not ok $n - $1"; }
check() { # description, then a test command
	local d=$1
	shift
	if "$@"; then ok "$d"; else not_ok "$d"; fi
}
vm() { # expected-status description -- run.sh args...
	local want=$1 d=$2
	shift 3
	local t0=$SECONDS rc
	"$RUN" -q "$@" >"$scratch/out" 2>"$scratch/err"
	rc=$?
	if [ "$rc" = "$want" ]; then
		ok "$d: status $rc ($((SECONDS - t0))s)"
	else
		not_ok "$d: status $rc, expected $want ($((SECONDS - t0))s)"
		sed 's/^/#   out: /' "$scratch/out" | tail -n 20
		sed 's/^/#   err: /' "$scratch/err" | tail -n 40
	fi
	return 0
}

# The fake engine: FLAXDRM_FAKE_ENGINE_MODE=ok|never|die.
cat >"$scratch/fake-engine" <<'EOF2'
#!/bin/bash
[ "$1" = --ready-file ] && [ -n "$2" ] || { echo "fake-engine: bad arguments: $*"; exit 2; }
mode=${FLAXDRM_FAKE_ENGINE_MODE:-ok}
echo "$(id -u) $*" >"$(dirname "$0")/engine-ran"
[ "$mode" = never ] && exec sleep 1000
trap 'exit 0' TERM
touch "$2"
if [ "$mode" = die ]; then sleep 1; exit 9; fi
while :; do sleep 0.2; done
EOF2
chmod +x "$scratch/fake-engine"
export FLAXDRM_ENGINE=$scratch/fake-engine

kver=${KVER:-$(ls /boot/vmlinuz-6.1.*-amd64 2>/dev/null | sed 's|.*/vmlinuz-||' | sort -V | tail -n1)}
kmod=${FLAXDRM_KMOD:-$ROOT/build/kmod/$kver/flaxdrm.ko}

# a) statuses
vm 1 "false returns 1" -- --no-engine false
# b) + c): one boot (with the fake engine, when flaxdrm.ko is built) checks
# the user, the environment and the shared cwd
vm 7 "exit 7 returns 7" -- sh -c '
	echo HARNESS-STDOUT-MARKER
	id -u >uid; id -gn >group; id -Gn >groups; pwd >pwd; echo "$HOME" >home
	readlink -f /proc/self/fd/0 >stdin
	mkdir -p sub/dir && echo payload >sub/dir/file
	stat -c "%a %U %G" /dev/dri/card* >card 2>/dev/null
	stat -c "%a" /dev/dri/renderD* >render 2>/dev/null
	exit 7'
check "CMD output reaches run.sh's stdout" grep -qx HARNESS-STDOUT-MARKER "$scratch/out"
check "CMD runs as uid 1000" [ "$(cat uid 2>/dev/null)" = 1000 ]
check "CMD is in group video" grep -qw video groups
check "CMD has HOME=/tmp/home" [ "$(cat home 2>/dev/null)" = /tmp/home ]
check "CMD's stdin is /dev/null" [ "$(cat stdin 2>/dev/null)" = /dev/null ]
check "CMD runs in the caller's cwd ($scratch)" [ "$(cat pwd 2>/dev/null)" = "$scratch" ]
check "a file written in the guest is read on the host" [ "$(cat sub/dir/file 2>/dev/null)" = payload ]
if [ -r "$kmod" ]; then
	check "/dev/dri/card* is 0660 root:video" grep -qx "660 root video" card
	check "/dev/dri/renderD* is 0666" grep -qx 666 render
	check "the engine ran as root with --ready-file" grep -q '^0 --ready-file /' engine-ran
else
	echo "ok $((n += 1)) - # SKIP device node modes: $kmod not built"
fi

# d) a kernel warning fails the run even though CMD succeeds
vm 120 "a WARNING: in the kernel log fails the run" -- --no-engine \
	--root-cmd 'echo "WARNING: flaxdrm harness self-test" >/dev/kmsg' true
check "the failure names the warning" grep -q "WARNING: flaxdrm harness self-test" "$scratch/err"

if [ $quick = 0 ]; then
	# e) crash and timeout
	"$RUN" -q --no-engine --root-cmd 'echo c >/proc/sysrq-trigger' true >"$scratch/out" 2>"$scratch/err"
	rc=$?
	if [ $rc = 120 ] || [ $rc = 123 ]; then
		ok "a kernel crash fails the run: status $rc"
	else
		not_ok "a kernel crash fails the run: status $rc, expected 120 or 123"
		tail -n 30 "$scratch/err" | sed 's/^/#   err: /'
	fi
	vm 124 "a hung command runs into --timeout" -- --no-engine --timeout 25 sleep 1000
	check "the timeout is reported" grep -q "timed out" "$scratch/err"

	# f) rmmod must succeed: a root process holding the device open blocks it
	if [ -r "$kmod" ]; then
		vm 121 "rmmod failure fails the run" -- --no-engine \
			--root-cmd 'setsid sleep 1000 </dev/dri/card0 >/dev/null 2>&1 &' true
		# g) engine failures
		FLAXDRM_FAKE_ENGINE_MODE=never FLAXDRM_VM_ENGINE_TIMEOUT=5 \
			vm 122 "an engine that never gets ready fails the run" -- true
		check "... and CMD did not run" grep -q "command status: not-run" "$scratch/err"
		FLAXDRM_FAKE_ENGINE_MODE=die vm 122 "an engine that dies while CMD runs fails the run" -- sleep 5
	else
		echo "ok $((n += 1)) - # SKIP rmmod and engine failures: $kmod not built"
	fi
fi

echo "1..$n"
if [ $failures = 0 ]; then
	echo "harness_test: all $n checks passed"
else
	echo "harness_test: $failures of $n checks FAILED"
fi
[ $failures = 0 ]
