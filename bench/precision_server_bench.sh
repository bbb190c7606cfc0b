#!/bin/bash
# precision_server_bench.sh: the real server serving one model in FP32, BF16
# and INT8, compared in one run by compare_configs.py (calls/s, p50/p99,
# client and server CPU per call, rows per forward pass, and each
# precision's throughput relative to FP32, paired per round).
#
# usage: bench/precision_server_bench.sh [MODEL [compare_configs options...]]
#   MODEL defaults to mlp-784 (from models/); options default to
#   --concurrency 1,32 --rounds 5. Binaries: $NNSERVE (build/server/nnserve),
#   $CLI (build/client/nnserve-cli).
#
# The three servers get three copies of models/MODEL that differ only in the
# `precision:` line of config.pbtxt (weights are hard links). compare_configs
# gives every server the same --model-repository, so each runs through a
# small wrapper that swaps in its own copy (the NNSERVE_BENCH_REPOSITORY
# environment variable of its configuration).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
MODEL=${1:-mlp-784}
shift || true
OPTIONS=("$@")
if [ ${#OPTIONS[@]} -eq 0 ]; then OPTIONS=(--concurrency 1,32 --rounds 5); fi
NNSERVE=${NNSERVE:-$ROOT/build/server/nnserve}
CLI=${CLI:-$ROOT/build/client/nnserve-cli}

TMP=$(mktemp -d "${TMPDIR:-/tmp}/precision-bench.XXXXXX")
trap 'rm -rf "$TMP"' EXIT

for precision in FP32 BF16 INT8; do
  dir="$TMP/$precision/$MODEL"
  mkdir -p "$dir"
  for entry in "$ROOT/models/$MODEL"/*; do
    if [ -d "$entry" ]; then
      cp -al "$entry" "$dir/"
    elif [ "$(basename "$entry")" != config.pbtxt ]; then
      ln "$entry" "$dir/"
    fi
  done
  grep -v '^precision:' "$ROOT/models/$MODEL/config.pbtxt" >"$dir/config.pbtxt"
  echo "precision: $precision" >>"$dir/config.pbtxt"
done

# nnserve with --model-repository replaced by $NNSERVE_BENCH_REPOSITORY.
cat >"$TMP/nnserve" <<WRAPPER
#!/bin/bash
args=()
while [ \$# -gt 0 ]; do
  if [ "\$1" = --model-repository ]; then
    args+=("\$1" "\$NNSERVE_BENCH_REPOSITORY"); shift 2
  else
    args+=("\$1"); shift
  fi
done
exec "$NNSERVE" "\${args[@]}"
WRAPPER
chmod +x "$TMP/nnserve"

"$ROOT/bench/compare_configs.py" --nnserve "$NNSERVE" --cli "$CLI" \
  --model "$MODEL" "${OPTIONS[@]}" \
  "FP32=NNSERVE_BENCH_REPOSITORY=$TMP/FP32 @$TMP/nnserve" \
  "BF16=NNSERVE_BENCH_REPOSITORY=$TMP/BF16 @$TMP/nnserve" \
  "INT8=NNSERVE_BENCH_REPOSITORY=$TMP/INT8 @$TMP/nnserve"
