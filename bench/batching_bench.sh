#!/usr/bin/env bash
# batching_bench.sh: dynamic batching on vs off, beside the transport floor.
# Starts, on loopback ports chosen by the OS, `nnserve serve` twice (one with
# --dynamic-batching=true, one with false) and transport_baseline_server
# (same API, no computation) once per model, then runs `nnserve-cli bench`
# (batch 1 per call) against each for every model and concurrency level,
# rotating the order per round so drift in the machine's load does not
# favour one side. Prints throughput, p50 and p99 (medians over rounds) and
# the ratios (paired per round, median over rounds).
#
# usage: batching_bench.sh NNSERVE NNSERVE_CLI TRANSPORT_BASELINE [MODELS_DIR]
# environment: MODELS ("digits mlp-784"), CONCURRENCY ("1 8 32 128"),
#   DURATION seconds per run (2), WARMUP seconds (0.5), ROUNDS (3),
#   NNSERVE_ARGS (extra `nnserve serve` flags for both servers).
# Targets (issue 5): mlp-784 at c=32 with batching >= 2x without; digits at
#   c=32 with batching >= 0.9x the baseline; p50 at c=1 with batching <=
#   1.05x without. Misses are reported, not fatal; a failed call exits 1.
set -euo pipefail

if [ $# -lt 3 ]; then
  sed -n '2,18p' "$0" >&2
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

orders=("base off on" "on base off" "off on base")
for round in $(seq "$ROUNDS"); do
  for model in $MODELS; do
    for c in $CONCURRENCY; do
      for target in ${orders[$(((round - 1) % 3))]}; do
        addr=${ADDR[$target]:-}
        [ "$target" = base ] && addr=${ADDR[base.$model]}
        out="$TMP/$model.$target.c$c.r$round.json"
        "$CLI" --address "$addr" --json bench --model "$model" \
          --concurrency "$c" --duration "$DURATION" --warmup "$WARMUP" \
          >"$out"
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

# shellcheck disable=SC2086
"$PY" - "$TMP" "$ROUNDS" "$MODELS" $CONCURRENCY <<'PYEOF'
import json, statistics, sys

tmp, rounds, models = sys.argv[1], int(sys.argv[2]), sys.argv[3].split()
levels = [int(c) for c in sys.argv[4:]]

def load(model, target, c):
    return [json.load(open(f"{tmp}/{model}.{target}.c{c}.r{r}.json"))
            for r in range(1, rounds + 1)]

thr = lambda r: r["calls_per_second"]
p50 = lambda r: r["latency_us"]["p50"]
p99 = lambda r: r["latency_us"]["p99"]
med = lambda runs, f: statistics.median(f(r) for r in runs)
paired = lambda a, b, f: statistics.median(f(y) / f(x) for x, y in zip(a, b))

header = ("model", "conc", "base calls/s", "base p50", "off calls/s",
          "off p50", "off p99", "on calls/s", "on p50", "on p99",
          "on/off thr", "on/base thr", "on/off p50", "target")
rows, failed = [], 0
for model in models:
    for c in levels:
        b, off, on = (load(model, t, c) for t in ("base", "off", "on"))
        failed += sum(r["failed_calls"] for r in b + off + on)
        on_off_thr = paired(off, on, thr)
        on_base_thr = paired(b, on, thr)
        on_off_p50 = paired(off, on, p50)
        target = ""
        if c == 1:
            target = f"p50 on/off <= 1.05: {'PASS' if on_off_p50 <= 1.05 else 'MISS'}"
        elif c == 32 and model == "mlp-784":
            target = f"on/off >= 2: {'PASS' if on_off_thr >= 2 else 'MISS'}"
        elif c == 32 and model == "digits":
            target = f"on/base >= 0.9: {'PASS' if on_base_thr >= 0.9 else 'MISS'}"
        rows.append((model, str(c), f"{med(b, thr):.0f}", f"{med(b, p50):.0f}",
                     f"{med(off, thr):.0f}", f"{med(off, p50):.0f}",
                     f"{med(off, p99):.0f}", f"{med(on, thr):.0f}",
                     f"{med(on, p50):.0f}", f"{med(on, p99):.0f}",
                     f"{on_off_thr:.2f}", f"{on_base_thr:.2f}",
                     f"{on_off_p50:.2f}", target))
widths = [max(len(r[i]) for r in rows + [header]) for i in range(len(header))]
for r in [header] + rows:
    print("  ".join(v.rjust(w) for v, w in zip(r, widths)).rstrip())
print(f"(latencies in us; calls/s and latencies: medians over {rounds} rounds; "
      "ratios: median over rounds of the ratio within a round)")
if failed:
    print(f"error: {failed} calls failed; see the per-run JSON", file=sys.stderr)
    sys.exit(1)
PYEOF
