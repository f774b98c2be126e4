#!/bin/bash
# `make bench`: flaxdrm-bench (JSON) and the torch baselines in one run,
# then one table: case, flaxdrm time, baseline, baseline time, speed
# (baseline time / flaxdrm time: above 1 means flaxdrm is faster).
#
#   tests/bench/run.sh [path/to/flaxdrm-bench] [extra benchmark flags...]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bench=${1:-$here/../../build/release/tests/bench/flaxdrm-bench}
shift || true
[ -x "$bench" ] || { echo "run.sh: $bench not built (make userspace)" >&2; exit 1; }
# Debian's python3 (python3-torch), not whatever python3 comes first on PATH.
py=/usr/bin/python3
[ -x "$py" ] || py=python3
threads=$(nproc)

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

echo "== flaxdrm-bench ($(date -u +%FT%TZ), $threads cores, load average $(cut -d' ' -f1-3 /proc/loadavg))"
"$bench" --benchmark_out="$tmp/flaxdrm.json" --benchmark_out_format=json "$@"
echo "== torch baselines ($threads threads)"
"$py" "$here/torch_baseline.py" --threads "$threads" > "$tmp/torch.json"
cat "$tmp/torch.json"

"$py" - "$tmp/flaxdrm.json" "$tmp/torch.json" <<'PY'
import json, sys

bench = json.load(open(sys.argv[1]))
torch = json.load(open(sys.argv[2]))
rows = []
for b in bench["benchmarks"]:
    if b.get("run_type") == "aggregate":
        continue
    parts = b["name"].split("/")
    name = parts[0]
    args = dict(p.split(":", 1) for p in parts[1:] if ":" in p and not p.startswith("min_time"))
    if "flaxdrm_min_ms" not in b:  # skipped (e.g. no f16 on this device)
        continue
    ms = b["flaxdrm_min_ms"]
    if name == "BM_Gemm":
        rows.append(("gemm " + b.get("label", ""), ms, "openblas", b["openblas_ms"]))
    elif name == "BM_GemmF16" and "f32_ms" in b:
        # f16 Dense against the f32 Dense of the same shape (same run), and sgemm
        rows.append(("gemm " + b.get("label", ""), ms, "f32 dense", b["f32_ms"]))
        rows.append(("gemm " + b.get("label", ""), ms, "openblas", b["openblas_ms"]))
    elif name in ("BM_Attention", "BM_Conv3x3", "BM_LayerNorm", "BM_BatchNormTrain"):
        if name == "BM_Attention":
            key = f"attention_L{args['L']}_H{args['H']}_D{args['D']}" + ("_causal" if args["causal"] == "1" else "")
            case = key
        elif name == "BM_Conv3x3":
            key = f"conv3x3_N{args['N']}"
            case = key + " (56x56x64->64)"
        elif name == "BM_LayerNorm":
            key = f"layer_norm_{args['rows']}x{args['C']}"
            case = key
        else:
            key = f"batch_norm_train_N{args['N']}"
            case = key + " (56x56x64)"
        if args.get("f16") == "1":
            # the f16 op beside the same op on f32 from this run, then torch (f32)
            same = [c for c in bench["benchmarks"] if c.get("run_type") != "aggregate"
                    and c["name"] == b["name"].replace("f16:1", "f16:0") and "flaxdrm_min_ms" in c]
            rows.append((case + " f16", ms, "f32 same op", same[0]["flaxdrm_min_ms"] if same else None))
            rows.append((case + " f16", ms, "torch", torch[key] * 1e3 if key in torch else None))
        else:
            rows.append((case, ms, "torch", torch[key] * 1e3 if key in torch else None))

print()
print(f"{'case':36} {'flaxdrm ms':>11} {'baseline':>9} {'base ms':>9} {'speed':>7}")
for case, ms, base, bms in rows:
    speed = f"{bms / ms:7.2f}" if bms else "      -"
    bstr = f"{bms:9.3f}" if bms else "        -"
    print(f"{case:36} {ms:11.3f} {base:>9} {bstr} {speed}")
print("speed = baseline time / flaxdrm time (above 1: flaxdrm faster); times are the best call of each "
      "(flaxdrm: Executor::run wall time with uploads, dispatches, read-back; means in the JSON above)")
PY
