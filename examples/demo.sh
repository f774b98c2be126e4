#!/bin/bash
# examples/demo.sh: `make demo`. Real models through the kernel path.
#
# On the host it boots the VM (tests/vm/run.sh, kernel $KVER) and runs
# itself there as the unprivileged test user, with flaxdrm.ko loaded and
# flaxdrm-engine attached. In the VM:
#   - flaxdrm info;
#   - for the digits MLP and CNN (examples/digits, trained by train.py with
#     torch and exported as Flax checkpoints): the model summary, then
#     `flaxdrm run --device drm --timings` on the 360 held-out digits, and
#     the accuracy of the logits next to the accuracy the training script
#     measured. The demo fails unless they are equal (the same examples
#     classified correctly).
# A table of accuracies and per-job times (setup, call, cleanup) ends it.
set -u -o pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

if [ "${1:-}" != --in-vm ]; then
	if [ -n "${FLAXDRM_IN_VM:-}" ]; then
		exec bash "$0" --in-vm
	fi
	cd "$ROOT" || exit 1
	# Under TCG the engine compiles each shader pipeline on first use (10-30 s
	# each), and the CNN's first call compiles eight kinds of op in one job:
	# give jobs 10 minutes instead of the harness's 2.
	export FLAXDRM_VM_KMOD_ARGS=${FLAXDRM_VM_KMOD_ARGS-job_timeout_ms=600000}
	export FLAXDRM_VM_TIMEOUT=${FLAXDRM_VM_TIMEOUT:-2400}
	exec "$ROOT/tests/vm/run.sh" ${KVER:+--kernel "$KVER"} bash "$ROOT/examples/demo.sh" --in-vm
fi

BIN=${FLAXDRM_BIN_DIR:-$ROOT/build/release/userspace}
FLAXDRM=$BIN/flaxdrm
EX=$ROOT/examples/digits
PY=/usr/bin/python3

[ -x "$FLAXDRM" ] || { echo "demo: $FLAXDRM is not built (make userspace)"; exit 1; }
tmp=$(mktemp -d "${TMPDIR:-/tmp}/flaxdrm-demo.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT

section() { printf '\n==== %s ====\n' "$*"; }
expected() { # expected MODEL KEY: from the training script's expected.json
	"$PY" -c 'import json, sys; print(json.load(open(sys.argv[1]))[sys.argv[2]][sys.argv[3]])' \
		"$EX/expected.json" "$1" "$2"
}

section "flaxdrm info"
"$FLAXDRM" info || { echo "demo: no usable flaxdrm device"; exit 1; }

status=0
rows=()
n_test=$("$PY" -c 'import json, sys; print(json.load(open(sys.argv[1]))["n_test"])' "$EX/expected.json")
for m in mlp cnn; do
	section "$m: summary"
	"$FLAXDRM" summary --model "$EX/$m.json" --input "$EX/test_x.npy" --params "$EX/$m.msgpack" || {
		status=1
		continue
	}

	section "$m: flaxdrm run --device drm on $n_test held-out digits"
	out=$("$FLAXDRM" run --device drm --timings --model "$EX/$m.json" --params "$EX/$m.msgpack" \
		--input "$EX/test_x.npy" --output "$tmp/$m.npy" 2>&1)
	rc=$?
	echo "$out"
	if [ $rc != 0 ]; then
		echo "demo: $m: flaxdrm run failed (status $rc)"
		status=1
		rows+=("$(printf '%-4s %-22s %-22s %10s %10s %10s  %s' "$m" "-" "-" "-" "-" "-" FAIL)")
		continue
	fi
	ms() { echo "$out" | awk -v j="$1" '$1 == j { print $2 }'; }

	want=$(expected "$m" correct)
	acc=$("$FLAXDRM" accuracy --logits "$tmp/$m.npy" --labels "$EX/test_y.npy" --expect-correct "$want" 2>&1)
	rc=$?
	echo "$acc"
	got=$(echo "$acc" | sed -n 's/^accuracy: \([0-9.]*\) (\([0-9]*\)\/.*/\1 (\2\/'"$n_test"')/p')
	train=$(printf '%.4f (%s/%s)' "$(expected "$m" accuracy)" "$want" "$n_test")
	echo "$m: accuracy on drm: $got; training script (torch, eval mode): $train"
	verdict=ok
	if [ $rc != 0 ]; then
		echo "demo: FAIL: $m: the accuracy on drm differs from the training script's"
		verdict=FAIL
		status=1
	fi
	rows+=("$(printf '%-4s %-22s %-22s %10s %10s %10s  %s' "$m" "$got" "$train" "$(ms setup)" "$(ms call)" \
		"$(ms cleanup)" "$verdict")")
done

section "results (drm, $n_test held-out digits; job times in ms, wall time seen by the client)"
printf '%-4s %-22s %-22s %10s %10s %10s  %s\n' model "accuracy (drm)" "accuracy (training)" setup call cleanup ""
for r in "${rows[@]}"; do
	echo "$r"
done
[ $status = 0 ] && echo "demo: ok" || echo "demo: FAILED"
exit $status
