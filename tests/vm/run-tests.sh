#!/bin/bash
# tests/vm/run-tests.sh: the VM test driver of `make test-vm`.
#
# usage: tests/vm/run-tests.sh [NAME...]
#
# Builds nothing (make has done that). Boots ONE VM with tests/vm/run.sh
# (kernel $KVER, flaxdrm.ko loaded, engine running) and runs in it, as the
# unprivileged test user (uid 1000), from the repository root:
#   - every GoogleTest binary build/release/tests/vm/*_test (executables;
#     $FLAXDRM_VM_TEST_BIN_DIR overrides the folder), with
#     --gtest_output=xml:build/vm/results/NAME.xml;
#   - every tests/vm/*_test.sh script except harness_test.sh (that one boots
#     VMs itself and runs on the host), with bash.
# NAME... keeps only the tests whose name contains one of the NAMEs.
#
# Root pass: GoogleTest suites that play the engine themselves need root and
# no engine attached. When a binary lists tests matching
# $FLAXDRM_VM_ROOT_GTEST_FILTER (default "EngineLink.*"; listed on the host
# with --gtest_list_tests), a second VM boots with `run.sh --no-engine
# --as-root` and runs those binaries as root with that filter, results in
# build/vm/results/NAME.root.{xml,log} and summary.root.txt. (In the first
# pass these tests skip themselves.) FLAXDRM_VM_ROOT_PASS=0 turns it off.
# Each test's output goes to the terminal and to build/vm/results/NAME.log;
# build/vm/results/summary.txt lists PASS/FAIL per test. Each test is killed
# after $FLAXDRM_VM_TEST_TIMEOUT s (default 900); the whole VM after
# $FLAXDRM_VM_TIMEOUT s (default 3600). GTEST_* and FLAXDRM_* variables are
# passed into the VM (e.g. GTEST_FILTER).
#
# Exit status: 0 when every test passed and the harness saw nothing wrong
# (no kernel warning, clean rmmod, engine fine); 1 when a test failed; the
# harness statuses of run.sh (120-125) otherwise. No tests found is not a
# failure unless FLAXDRM_REQUIRE_VM_TESTS=1; the VM still boots then, which
# checks that flaxdrm.ko loads, the engine starts and the module unloads.
set -u -o pipefail

SELF_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$SELF_DIR/../.." && pwd)
# make BUILD=DIR: the build tree to test (release/, vm/), default build/;
# the tests in the VM learn it from FLAXDRM_BUILD_DIR
export FLAXDRM_BUILD_DIR=${BUILD:-${FLAXDRM_BUILD_DIR:-$ROOT/build}}
RESULTS=$FLAXDRM_BUILD_DIR/vm/results

# ------------------------------------------------------- inside the VM
if [ "${1:-}" = --in-vm ]; then
	shift
	root_pass=0
	suffix=
	gtest_args=()
	if [ "${1:-}" = --root-pass ]; then
		root_pass=1
		suffix=.root
		gtest_args=("--gtest_filter=$2")
		shift 2
	fi
	cd "$ROOT" || exit 1
	t_all=$SECONDS
	pass=0
	failed=()
	summary=$RESULTS/summary$suffix.txt
	: >"$summary" || { echo "run-tests: cannot write $summary (uid $(id -u))"; exit 1; }
	if [ $root_pass = 1 ]; then
		echo "run-tests: root pass, no engine: $# GoogleTest binar(y/ies) with ${gtest_args[0]} on $(uname -r)"
	else
		echo "run-tests: $# VM test(s) as $(id -un) (uid $(id -u), groups $(id -Gn)) on $(uname -r)"
	fi
	for t in "$@"; do
		name=$(basename "$t")
		name=${name%.sh}$suffix
		log=$RESULTS/$name.log
		echo "==== RUN  $name"
		t0=$SECONDS
		case $t in
		*.sh) cmd=(bash "$t") ;;
		*) cmd=("$t" "--gtest_output=xml:$RESULTS/$name.xml" "${gtest_args[@]}") ;;
		esac
		timeout -k 10 "${FLAXDRM_VM_TEST_TIMEOUT:-900}" "${cmd[@]}" </dev/null 2>&1 | tee "$log"
		rc=${PIPESTATUS[0]}
		dt=$((SECONDS - t0))
		if [ "$rc" = 0 ]; then
			pass=$((pass + 1))
			line="PASS $name (${dt}s)"
		else
			why="status $rc"
			[ "$rc" = 124 ] && why="timed out after ${FLAXDRM_VM_TEST_TIMEOUT:-900}s"
			[ "$rc" -gt 128 ] && [ "$rc" != 137 ] && why="killed by signal $((rc - 128))"
			failed+=("$name")
			line="FAIL $name (${dt}s, $why)"
		fi
		echo "==== $line"
		echo "$line" >>"$summary"
	done
	echo
	echo "run-tests: summary ($((SECONDS - t_all))s in the VM)"
	sed 's/^/  /' "$summary"
	echo "run-tests: $pass passed, ${#failed[@]} failed${failed:+: ${failed[*]}}"
	[ ${#failed[@]} = 0 ]
	exit
fi

# ------------------------------------------------------- on the host
bin_dir=${FLAXDRM_VM_TEST_BIN_DIR:-$FLAXDRM_BUILD_DIR/release/tests/vm}
tests=()
if [ -d "$bin_dir" ]; then
	for f in "$bin_dir"/*_test; do
		[ -f "$f" ] && [ -x "$f" ] && tests+=("$f")
	done
fi
for f in "$SELF_DIR"/*_test.sh; do
	[ -f "$f" ] || continue
	[ "$(basename "$f")" = harness_test.sh ] && continue
	tests+=("$f")
done
if [ $# -gt 0 ]; then
	keep=()
	for f in "${tests[@]}"; do
		for n in "$@"; do
			case $(basename "$f") in *"$n"*) keep+=("$f"); break ;; esac
		done
	done
	tests=("${keep[@]}")
fi

if [ ${#tests[@]} = 0 ]; then
	echo "run-tests: no VM tests found (GoogleTest binaries in $bin_dir/*_test, scripts tests/vm/*_test.sh)"
	if [ "${FLAXDRM_REQUIRE_VM_TESTS:-0}" = 1 ]; then
		echo "run-tests: FAIL: FLAXDRM_REQUIRE_VM_TESTS=1 and there is nothing to run"
		exit 1
	fi
	echo "run-tests: booting the VM anyway to check that flaxdrm.ko loads and unloads cleanly"
fi

rm -rf "$RESULTS"
mkdir -p "$RESULTS" || exit 125
# Writable for the test user also when the cwd share is plain 9p.
chmod 1777 "$RESULTS"

cd "$ROOT" || exit 125
"$SELF_DIR/run.sh" --timeout "${FLAXDRM_VM_TIMEOUT:-3600}" \
	bash "$SELF_DIR/run-tests.sh" --in-vm "${tests[@]}"
rc=$?

root_filter=${FLAXDRM_VM_ROOT_GTEST_FILTER:-EngineLink.*}
root_tests=()
if [ "${FLAXDRM_VM_ROOT_PASS:-1}" != 0 ]; then
	for t in "${tests[@]}"; do
		case $t in *.sh) continue ;; esac
		# a line starting with two spaces is a test name
		if "$t" --gtest_list_tests "--gtest_filter=$root_filter" 2>/dev/null | grep -q '^  [^ ]'; then
			root_tests+=("$t")
		fi
	done
fi
if [ ${#root_tests[@]} -gt 0 ]; then
	echo
	echo "run-tests: second VM for the tests that need root and no engine ($root_filter)"
	"$SELF_DIR/run.sh" --timeout "${FLAXDRM_VM_TIMEOUT:-3600}" --no-engine --as-root \
		bash "$SELF_DIR/run-tests.sh" --in-vm --root-pass "$root_filter" "${root_tests[@]}"
	rc2=$?
	# a harness status (120-125) says more than a test failure (1)
	if [ "$rc2" != 0 ] && { [ "$rc" = 0 ] || [ "$rc" = 1 ]; }; then
		rc=$rc2
	fi
fi

case $rc in
0) echo "run-tests: VM tests PASSED (results in $RESULTS/)" ;;
1) echo "run-tests: VM tests FAILED (results in $RESULTS/)" ;;
*) echo "run-tests: VM tests FAILED: harness status $rc (see run.sh messages above; console in $FLAXDRM_BUILD_DIR/vm/last-console.log)" ;;
esac
exit "$rc"
