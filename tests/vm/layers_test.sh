#!/bin/bash
# tests/vm/layers_test.sh: a few layers of the model JSON through the kernel
# path, in the VM.
#
# Runs as the unprivileged user inside the VM (tests/vm/run-tests.sh, or
# `tests/vm/run.sh bash tests/vm/layers_test.sh`). For each case of
# tests/tools/layers_reference.py named below (grouped conv with dilations,
# ConvTranspose, GroupNorm, Embed with int32 input, self-attention, pools,
# Residual) it writes the model, a Flax checkpoint and the torch/numpy
# reference, runs `flaxdrm run --device drm` (and `--device local` when
# FLAXDRM_LAYERS_DEVICES says so: the host's userspace_layers_test already
# checks local against the same references, and under TCG every device
# compiles its pipelines anew, 10-30 s each), and checks drm against the
# reference within 2e-5 and, with both, drm == local within 1e-5. The kernel has to accept every module kind and op, and the
# batch_stats collection is bound by the BatchNorm case.
set -u -o pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BIN=${FLAXDRM_BIN_DIR:-${FLAXDRM_BUILD_DIR:-$ROOT/build}/release/userspace}
FLAXDRM=$BIN/flaxdrm
PY=/usr/bin/python3
DEVICES=${FLAXDRM_LAYERS_DEVICES:-drm}
CASES=${FLAXDRM_LAYERS_CASES:-"conv_dilations_groups conv_transpose_same batch_norm group_norm embed attention pools residual"}

failures=0
fail() { echo "layers_test: FAIL: $*"; failures=$((failures + 1)); }
ok() { echo "layers_test: ok: $*"; }

[ -x "$FLAXDRM" ] || { echo "layers_test: $FLAXDRM is not built (make userspace)"; exit 1; }
"$PY" -c 'import numpy, torch, msgpack' 2>/dev/null || { echo "layers_test: $PY lacks numpy, torch or msgpack"; exit 1; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/layers_test.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT

maxdiff() {
	"$PY" -c 'import sys, numpy as np; a, b = np.load(sys.argv[1]), np.load(sys.argv[2]); assert a.shape == b.shape, (a.shape, b.shape); print("%.3g" % float(np.max(np.abs(a.astype(np.float64) - b))))' "$1" "$2"
}
within() { "$PY" -c 'import sys; sys.exit(0 if float(sys.argv[1]) <= float(sys.argv[2]) else 1)' "$1" "$2"; }

# one python run for all cases: importing torch takes long under TCG
# shellcheck disable=SC2086
"$PY" "$ROOT/tests/tools/layers_reference.py" --many "$tmp" $CASES || fail "layers_reference.py failed"
for c in $CASES; do
	d=$tmp/$c
	[ -f "$d/expected.npy" ] || { fail "$c: no reference"; continue; }
	for dev in $DEVICES; do
		if ! "$FLAXDRM" run --device "$dev" --timings --model "$d/model.json" --params "$d/params.msgpack" \
			--input "$d/input.npy" --output "$d/$dev.npy" 2>&1 | sed 's/^/  /'; then
			fail "$c: flaxdrm run --device $dev failed"
			continue
		fi
		m=$(maxdiff "$d/$dev.npy" "$d/expected.npy")
		if [ -n "$m" ] && within "$m" 2e-5; then
			ok "$c: $dev matches the reference (max abs diff $m)"
		else
			fail "$c: $dev differs from the reference by ${m:-?}"
		fi
	done
	if [ -f "$d/drm.npy" ] && [ -f "$d/local.npy" ]; then
		m=$(maxdiff "$d/drm.npy" "$d/local.npy")
		if [ -n "$m" ] && within "$m" 1e-5; then
			ok "$c: drm and local agree (max abs diff $m)"
		else
			fail "$c: drm and local differ by ${m:-?}"
		fi
	fi
done

if [ $failures = 0 ]; then
	echo "layers_test: PASS"
	exit 0
fi
echo "layers_test: $failures failure(s)"
exit 1
