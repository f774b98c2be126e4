#!/bin/bash
# tests/vm/digits_test.sh: the digits example (examples/digits: a CNN with
# Conv, BatchNorm, avg_pool and flatten, and a Sequential MLP) through the
# kernel path, in the VM.
#
# Runs as the unprivileged user inside the VM (tests/vm/run-tests.sh, or
# `tests/vm/run.sh bash tests/vm/digits_test.sh`). For both models:
# `flaxdrm run --device drm` and `--device local` on the 360 held-out
# digits; drm and local logits agree within 1e-5 (max abs diff), both agree
# with the logits torch computed at training time within 1e-4, and the
# accuracy equals the training script's exactly (same number correct).
set -u -o pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BIN=${FLAXDRM_BIN_DIR:-${FLAXDRM_BUILD_DIR:-$ROOT/build}/release/userspace}
FLAXDRM=$BIN/flaxdrm
EX=$ROOT/examples/digits
PY=/usr/bin/python3
TOL=1e-5
TORCH_TOL=1e-4

failures=0
fail() { echo "digits_test: FAIL: $*"; failures=$((failures + 1)); }
ok() { echo "digits_test: ok: $*"; }

[ -x "$FLAXDRM" ] || { echo "digits_test: $FLAXDRM is not built (make userspace)"; exit 1; }
"$PY" -c 'import numpy' 2>/dev/null || { echo "digits_test: $PY has no numpy"; exit 1; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/digits_test.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT

maxdiff() {
	"$PY" -c 'import sys, numpy as np; a, b = np.load(sys.argv[1]), np.load(sys.argv[2]); assert a.shape == b.shape, (a.shape, b.shape); print("%.3g" % float(np.max(np.abs(a.astype(np.float64) - b))))' "$1" "$2"
}
within() { "$PY" -c 'import sys; sys.exit(0 if float(sys.argv[1]) <= float(sys.argv[2]) else 1)' "$1" "$2"; }

for m in mlp cnn; do
	want=$("$PY" -c 'import json, sys; print(json.load(open(sys.argv[1]))[sys.argv[2]]["correct"])' \
		"$EX/expected.json" "$m")
	for dev in drm local; do
		echo "digits_test: $m on $dev"
		if ! "$FLAXDRM" run --device "$dev" --timings --model "$EX/$m.json" --params "$EX/$m.msgpack" \
			--input "$EX/test_x.npy" --output "$tmp/$m.$dev.npy" 2>&1 | sed 's/^/  /'; then
			fail "$m: flaxdrm run --device $dev failed"
			continue
		fi
		if "$FLAXDRM" accuracy --logits "$tmp/$m.$dev.npy" --labels "$EX/test_y.npy" \
			--expect-correct "$want" 2>&1 | sed 's/^/  /'; then
			ok "$m: $dev classifies $want held-out digits correctly, as the training script measured"
		else
			fail "$m: $dev accuracy differs from the training script's ($want correct)"
		fi
		d=$(maxdiff "$tmp/$m.$dev.npy" "$EX/expected_logits_$m.npy")
		if [ -n "$d" ] && within "$d" "$TORCH_TOL"; then
			ok "$m: $dev logits match torch's within $TORCH_TOL (max abs diff $d)"
		else
			fail "$m: $dev logits differ from torch's by ${d:-?} (> $TORCH_TOL)"
		fi
	done
	if [ -f "$tmp/$m.drm.npy" ] && [ -f "$tmp/$m.local.npy" ]; then
		d=$(maxdiff "$tmp/$m.drm.npy" "$tmp/$m.local.npy")
		if [ -n "$d" ] && within "$d" "$TOL"; then
			ok "$m: drm and local agree within $TOL (max abs diff $d)"
		else
			fail "$m: drm and local differ by ${d:-?} (> $TOL)"
		fi
	fi
done

if [ $failures = 0 ]; then
	echo "digits_test: PASS"
	exit 0
fi
echo "digits_test: $failures failure(s)"
exit 1
