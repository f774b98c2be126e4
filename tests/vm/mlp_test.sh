#!/bin/bash
# tests/vm/mlp_test.sh: the example MLP through the kernel path, in the VM.
#
# Runs as the unprivileged user inside the VM (tests/vm/run-tests.sh, or
# `tests/vm/run.sh bash tests/vm/mlp_test.sh`), with flaxdrm.ko loaded and
# flaxdrm-engine attached. For the Compact and the Sequential example and a
# generated nested model with batch dims it runs `flaxdrm run --device drm`
# and `--device local`, checks both against the numpy float64 reference
# (tests/tools/mlp_reference.py, max abs diff <= 1e-5) and checks that drm
# and local agree exactly (same runtime, same Vulkan device). Also:
# `flaxdrm info` sees the device and the engine, and a checkpoint that does
# not match the model fails with the per-path report. Exits non-zero on any
# failure.
set -u -o pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BIN=${FLAXDRM_BIN_DIR:-${FLAXDRM_BUILD_DIR:-$ROOT/build}/release/userspace}
FLAXDRM=$BIN/flaxdrm
EX=$ROOT/examples/mlp
TOOLS=$ROOT/tests/tools
TOL=1e-5

PY=${FLAXDRM_PYTHON:-}
if [ -z "$PY" ]; then
	for p in /usr/bin/python3 python3; do
		if "$p" -c 'import numpy, msgpack' 2>/dev/null; then PY=$p; break; fi
	done
fi

failures=0
fail() { echo "mlp_test: FAIL: $*"; failures=$((failures + 1)); }
ok() { echo "mlp_test: ok: $*"; }

[ -x "$FLAXDRM" ] || { echo "mlp_test: $FLAXDRM is not built (make userspace)"; exit 1; }
[ -n "$PY" ] || { echo "mlp_test: no python3 with numpy and msgpack"; exit 1; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/mlp_test.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT

# the example files are committed; regenerate them only if missing
if [ ! -f "$EX/params.msgpack" ] || [ ! -f "$EX/params_sequential.msgpack" ] || [ ! -f "$EX/input.npy" ]; then
	echo "mlp_test: generating examples/mlp params and input"
	"$PY" "$EX/make_params.py" || { echo "mlp_test: make_params.py failed"; exit 1; }
fi

echo "mlp_test: flaxdrm info"
info=$("$FLAXDRM" info 2>&1)
rc=$?
echo "$info" | sed 's/^/  /'
if [ $rc = 0 ] && echo "$info" | grep -q '^engine: *attached'; then
	ok "info sees the device and the engine"
else
	fail "flaxdrm info (status $rc) does not show an attached engine"
fi

# run MODEL PARAMS INPUT NAME: both devices, reference, drm == local
run_model() {
	local model=$1 params=$2 input=$3 name=$4 dev
	"$PY" "$TOOLS/mlp_reference.py" --model "$model" --params "$params" --input "$input" \
		--output "$tmp/$name.ref.npy" || { fail "$name: numpy reference failed"; return; }
	for dev in drm local; do
		echo "mlp_test: $name on $dev"
		if ! "$FLAXDRM" run --device "$dev" --model "$model" --params "$params" --input "$input" \
			--output "$tmp/$name.$dev.npy" --timings 2>&1 | sed 's/^/  /'; then
			fail "$name: flaxdrm run --device $dev failed"
			continue
		fi
		if "$PY" "$TOOLS/mlp_reference.py" --model "$model" --params "$params" --input "$input" \
			--compare "$tmp/$name.$dev.npy" --tolerance "$TOL" | sed 's/^/  /'; then
			ok "$name: $dev matches numpy within $TOL"
		else
			fail "$name: $dev differs from numpy by more than $TOL"
		fi
	done
	if [ -f "$tmp/$name.drm.npy" ] && [ -f "$tmp/$name.local.npy" ]; then
		if cmp -s "$tmp/$name.drm.npy" "$tmp/$name.local.npy"; then
			ok "$name: drm and local are bit-identical"
		else
			"$PY" -c 'import sys, numpy as np; a, b = np.load(sys.argv[1]), np.load(sys.argv[2]); print("  drm vs local max abs diff", float(np.max(np.abs(a - b))))' \
				"$tmp/$name.drm.npy" "$tmp/$name.local.npy"
			fail "$name: drm and local results differ"
		fi
	fi
}

run_model "$EX/model.json" "$EX/params.msgpack" "$EX/input.npy" compact
run_model "$EX/model_sequential.json" "$EX/params_sequential.msgpack" "$EX/input.npy" sequential

cat >"$tmp/nested.json" <<'JSON'
{"module": "Compact", "layers": [
  {"module": "Sequential", "layers": [
    {"module": "Dense", "features": 48}, {"module": "relu"}, {"module": "Dense", "features": 33}]},
  {"module": "relu"},
  {"module": "Dense", "features": 17, "name": "head", "use_bias": false},
  {"module": "Compact", "class": "Out", "layers": [{"module": "Dense", "features": 5}]}]}
JSON
if "$PY" "$TOOLS/make_params.py" --model "$tmp/nested.json" --input-shape 2,3,19 --seed 3 \
	--params "$tmp/nested.msgpack" --input "$tmp/nested.npy"; then
	run_model "$tmp/nested.json" "$tmp/nested.msgpack" "$tmp/nested.npy" nested
else
	fail "make_params.py for the nested model failed"
fi

echo "mlp_test: mismatched checkpoint on drm"
out=$("$FLAXDRM" run --device drm --model "$EX/model.json" --params "$EX/params_sequential.msgpack" \
	--input "$EX/input.npy" --output "$tmp/bad.npy" 2>&1)
rc=$?
echo "$out" | sed 's/^/  /'
if [ $rc != 0 ] && echo "$out" | grep -q 'params/Dense_0/kernel: missing'; then
	ok "mismatched checkpoint refused with the per-path report"
else
	fail "mismatched checkpoint: status $rc, no per-path report"
fi

if [ $failures = 0 ]; then
	echo "mlp_test: PASS"
	exit 0
fi
echo "mlp_test: $failures failure(s)"
exit 1
