#!/usr/bin/env bash
# compare_transport.sh: nnserve against the transport floor. Starts
# transport_baseline_server (same Inference API, no computation) and
# `nnserve serve` on loopback ports chosen by the OS, then runs
# `nnserve-cli bench` against each back to back for every concurrency level
# and prints a table of p50 latency and throughput ratios (nnserve/baseline).
#
# usage: compare_transport.sh NNSERVE NNSERVE_CLI TRANSPORT_BASELINE [MODELS_DIR]
#   (cmake --build <dir> --target compare_transport passes these)
# environment: MODEL (digits), BATCH (1), CONCURRENCY ("1 8 32"),
#   DURATION seconds per run (2), WARMUP seconds (1), ROUNDS (5; medians
#   over the rounds, ratios paired per round and best-round ratios are
#   reported; targets are judged on the paired medians), RAW (0; 1 = raw
#   tensor encoding), NNSERVE_ARGS (extra `nnserve serve` flags).
# Targets: p50 at concurrency 1 <= 1.15x baseline; throughput at
# concurrency >= 8 >= 0.85x baseline. Exits 1 when a call failed or a
# server did not start; target misses are reported, not fatal.
set -euo pipefail

if [ $# -lt 3 ]; then
  sed -n '2,17p' "$0" >&2
  exit 2
fi
NNSERVE=$1
CLI=$2
BASELINE=$3
MODELS=${4:-$(cd "$(dirname "$0")/.." && pwd)/models}
MODEL=${MODEL:-digits}
BATCH=${BATCH:-1}
CONCURRENCY=${CONCURRENCY:-"1 8 32"}
DURATION=${DURATION:-2}
WARMUP=${WARMUP:-1}
ROUNDS=${ROUNDS:-5}
RAW=${RAW:-0}
PY=/usr/bin/python3

# shellcheck source=bench/bench_lib.sh
source "$(dirname "$0")/bench_lib.sh"
bench_init compare-transport

# nnserve first: the baseline mirrors the model's input/output sizes.
# shellcheck disable=SC2086
start_server nnserve "$NNSERVE" serve --model-repository "$MODELS" \
  --grpc-address 127.0.0.1:0 --metrics-address 127.0.0.1:0 \
  --http-address 127.0.0.1:0 \
  --port-file "$TMP/nnserve.port" ${NNSERVE_ARGS:-}
NNSERVE_ADDR=$SERVER_ADDR

model_sizes "$NNSERVE_ADDR" "$MODEL"

start_server baseline "$BASELINE" --address 127.0.0.1:0 \
  --port-file "$TMP/baseline.port" --model "$MODEL" \
  --input-size "$INPUT_SIZE" --output-size "$OUTPUT_SIZE" "${LABEL_FLAG[@]}"
BASELINE_ADDR=$SERVER_ADDR

ENCODING_FLAG=()
[ "$RAW" = 1 ] && ENCODING_FLAG=(--raw)
echo "model $MODEL [$INPUT_SIZE -> $OUTPUT_SIZE], batch $BATCH," \
  "$([ "$RAW" = 1 ] && echo raw || echo values) encoding, ${DURATION} s per" \
  "run (+${WARMUP} s warm-up), $ROUNDS rounds; nnserve $NNSERVE_ADDR," \
  "baseline $BASELINE_ADDR"

for round in $(seq "$ROUNDS"); do
  for c in $CONCURRENCY; do
    # Alternate the order (ABBA) so that drift in the machine's load does
    # not favour one side.
    order="baseline nnserve"
    [ $((round % 2)) = 0 ] && order="nnserve baseline"
    for target in $order; do
      addr=$BASELINE_ADDR
      [ "$target" = nnserve ] && addr=$NNSERVE_ADDR
      "$CLI" --address "$addr" --json bench --model "$MODEL" \
        --concurrency "$c" --duration "$DURATION" --warmup "$WARMUP" \
        --batch "$BATCH" "${ENCODING_FLAG[@]}" \
        >"$TMP/$target.c$c.r$round.json"
      echo "  round $round c=$c $target: $("$PY" -c '
import json, sys
r = json.load(open(sys.argv[1]))
print("%.0f calls/s, p50 %.1f us, %d failed"
      % (r["calls_per_second"], r["latency_us"]["p50"], r["failed_calls"]))
' "$TMP/$target.c$c.r$round.json")"
    done
  done
done

# shellcheck disable=SC2086  # CONCURRENCY is a list of numbers.
"$PY" - "$TMP" "$ROUNDS" $CONCURRENCY <<'PYEOF'
import json, statistics, sys

tmp, rounds, levels = sys.argv[1], int(sys.argv[2]), [int(c) for c in sys.argv[3:]]

def load(target, c):
    return [json.load(open(f"{tmp}/{target}.c{c}.r{r}.json"))
            for r in range(1, rounds + 1)]

def med(runs, key):
    get = (lambda r: r["latency_us"][key]) if key in ("p50", "p90", "p99") else (lambda r: r[key])
    return statistics.median(get(r) for r in runs)

header = ("conc", "base p50us", "nns p50us", "p50 ratio", "best p50 ratio",
          "base calls/s", "nns calls/s", "thr ratio", "best thr ratio",
          "target")
rows, failed = [], 0
for c in levels:
    b, n = load("baseline", c), load("nnserve", c)
    failed += sum(r["failed_calls"] for r in b + n)
    p50 = lambda r: r["latency_us"]["p50"]
    thr = lambda r: r["calls_per_second"]
    # Paired: the two runs of a round are adjacent in time and see the same
    # background load; the median over rounds of their ratio.
    p50_ratio = statistics.median(p50(y) / p50(x) for x, y in zip(b, n))
    thr_ratio = statistics.median(thr(y) / thr(x) for x, y in zip(b, n))
    # Best of rounds: background load only adds latency and takes throughput,
    # so each side's best round is the closest to its intrinsic cost.
    best_p50 = min(map(p50, n)) / min(map(p50, b))
    best_thr = max(map(thr, n)) / max(map(thr, b))
    if c == 1:
        target = f"p50 <= 1.15x: {'PASS' if p50_ratio <= 1.15 else 'MISS'}"
    else:
        target = f"thr >= 0.85x: {'PASS' if thr_ratio >= 0.85 else 'MISS'}"
    rows.append((str(c), f"{med(b, 'p50'):.1f}", f"{med(n, 'p50'):.1f}",
                 f"{p50_ratio:.3f}", f"{best_p50:.3f}",
                 f"{med(b, 'calls_per_second'):.0f}",
                 f"{med(n, 'calls_per_second'):.0f}", f"{thr_ratio:.3f}",
                 f"{best_thr:.3f}", target))
widths = [max(len(r[i]) for r in rows + [header]) for i in range(len(header))]
for r in [header] + rows:
    print("  ".join(v.rjust(w) for v, w in zip(r, widths)))
print(f"(p50 and calls/s: medians over {rounds} rounds; ratio: median over "
      "rounds of nnserve/baseline in the same round; best ratio: nnserve's "
      "best round / baseline's best round)")
if failed:
    print(f"error: {failed} calls failed; see the per-run JSON", file=sys.stderr)
    sys.exit(1)
PYEOF
