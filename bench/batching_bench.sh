#!/usr/bin/env bash
# batching_bench.sh: dynamic batching on vs off, beside the transport floor.
# Starts, on loopback ports chosen by the OS, `nnserve serve` twice (one with
# --dynamic-batching=true, one with false) and transport_baseline_server
# (same API, no computation) once per model, then runs `nnserve-cli bench`
# (batch 1 per call) against each for every model and concurrency level,
# rotating the order per round so drift in the machine's load does not
# favour one side. Prints throughput, p50 and p99 (medians over rounds) and
# the ratios (paired per round, median over rounds), then where the CPU
# went: client and server CPU per call, forward time per call and per row
# from nnserve's metrics, and the on/off ratio batching would give if the
# batched server cost only the transport plus its forwards
# (bench/batching_report.py).
#
# usage: batching_bench.sh NNSERVE NNSERVE_CLI TRANSPORT_BASELINE [MODELS_DIR]
# environment: MODELS ("digits mlp-784"), CONCURRENCY ("1 8 32 128"),
#   DURATION seconds per run (2), WARMUP seconds (0.5), ROUNDS (3),
#   NNSERVE_ARGS (extra `nnserve serve` flags for both servers), KEEP (a
#   directory to copy the raw per-run files to; batching_report.py KEEP
#   prints the tables again).
# Targets (issue 5): mlp-784 at c=32 with batching >= 2x without; digits at
#   c=32 with batching >= 0.9x the baseline; p50 at c=1 with batching <=
#   1.05x without. Misses are reported, not fatal; a failed call exits 1.
set -euo pipefail

if [ $# -lt 3 ]; then
  sed -n '2,23p' "$0" >&2
  exit 2
fi
NNSERVE=$1
CLI=$2
BASELINE=$3
REPO=${4:-$(cd "$(dirname "$0")/.." && pwd)/models}
MODELS=${MODELS:-"digits mlp-784"}
CONCURRENCY=${CONCURRENCY:-"1 8 32 128"}
DURATION=${DURATION:-2}
WARMUP=${WARMUP:-0.5}
ROUNDS=${ROUNDS:-3}
PY=/usr/bin/python3

# shellcheck source=bench/bench_lib.sh
source "$(dirname "$0")/bench_lib.sh"
bench_init batching-bench

declare -A ADDR
for mode in on off; do
  flag=true
  [ "$mode" = off ] && flag=false
  # shellcheck disable=SC2086
  start_server "$mode" "$NNSERVE" serve --model-repository "$REPO" \
    --grpc-address 127.0.0.1:0 --metrics-address 127.0.0.1:0 \
    --http-address 127.0.0.1:0 \
    --port-file "$TMP/$mode.port" --dynamic-batching "$flag" \
    ${NNSERVE_ARGS:-}
  ADDR[$mode]=$SERVER_ADDR
done

for model in $MODELS; do
  model_sizes "${ADDR[on]}" "$model"
  start_server "base.$model" "$BASELINE" --address 127.0.0.1:0 \
    --port-file "$TMP/base.$model.port" --model "$model" \
    --input-size "$INPUT_SIZE" --output-size "$OUTPUT_SIZE" "${LABEL_FLAG[@]}"
  ADDR[base.$model]=$SERVER_ADDR
done

echo "batch 1 per call, values encoding, ${DURATION} s per run" \
  "(+${WARMUP} s warm-up), $ROUNDS rounds; $(nproc) cores"

# scrape SERVER FILE: SERVER's /metrics into FILE (nothing for the baseline,
# which has no metrics endpoint).
scrape() {
  [ -z "${METRICS_PORT[$1]}" ] ||
    curl -sf "http://127.0.0.1:${METRICS_PORT[$1]}/metrics" >"$2"
}

orders=("base off on" "on base off" "off on base")
for round in $(seq "$ROUNDS"); do
  for model in $MODELS; do
    for c in $CONCURRENCY; do
      for target in ${orders[$(((round - 1) % 3))]}; do
        server=$target
        [ "$target" = base ] && server=base.$model
        addr=${ADDR[$server]}
        run="$TMP/$model.$target.c$c.r$round"
        out="$run.json"
        # Server CPU time and (for nnserve) its metrics around the run.
        scrape "$server" "$run.before.prom"
        cpu_before=$(cpu_ticks "${SERVER_PID[$server]}")
        "$CLI" --address "$addr" --json bench --model "$model" \
          --concurrency "$c" --duration "$DURATION" --warmup "$WARMUP" \
          >"$out"
        echo "$cpu_before $(cpu_ticks "${SERVER_PID[$server]}")" >"$run.cpu"
        scrape "$server" "$run.after.prom"
        echo "  round $round $model c=$c $target: $("$PY" -c '
import json, sys
r = json.load(open(sys.argv[1]))
print("%.0f calls/s, p50 %.1f us, p99 %.1f us, %d failed" % (
    r["calls_per_second"], r["latency_us"]["p50"], r["latency_us"]["p99"],
    r["failed_calls"]))
' "$out")"
      done
    done
  done
done

# shellcheck disable=SC2086  # MODELS and CONCURRENCY are lists.
"$PY" -c '
import json, sys
models, levels = sys.argv[2].split(), [int(c) for c in sys.argv[3].split()]
json.dump({"rounds": int(sys.argv[4]), "models": models, "concurrency": levels,
           "duration": float(sys.argv[5]), "warmup": float(sys.argv[6]),
           "clk_tck": int(sys.argv[7]), "cores": int(sys.argv[8])},
          open(sys.argv[1], "w"))
' "$TMP/settings.json" "$MODELS" "$CONCURRENCY" "$ROUNDS" "$DURATION" \
  "$WARMUP" "$(getconf CLK_TCK)" "$(nproc)"
if [ -n "${KEEP:-}" ]; then
  mkdir -p "$KEEP"
  cp "$TMP"/*.json "$TMP"/*.cpu "$KEEP"/
  cp "$TMP"/*.prom "$KEEP"/ 2>/dev/null || true
fi
"$PY" "$(dirname "$0")/batching_report.py" "$TMP"
