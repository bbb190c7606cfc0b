#!/usr/bin/env bash
# Runs every libFuzzer harness (fuzz_<name>, tests/fuzz/) of a Clang build
# configured with -DNNSERVE_FUZZ=ON for a bounded time each, and prints one
# summary table (executions, exec/s, coverage, corpus size, result).
#
#   scripts/fuzz.sh BUILD_DIR [SECONDS=30]
#   FUZZ_ONLY="npy csv" scripts/fuzz.sh build-asan 60   # a subset
#
# The harnesses must already be built (cmake --build BUILD_DIR --target
# fuzz_npy ...). Each one starts from a copy of its committed seed corpus
# (tests/fuzz/corpus/<name>/) in a temporary directory, so the committed
# corpora are never modified; new inputs it finds are discarded with the
# copy. Any finding — crash, sanitizer report, failed FUZZ_CHECK, leak,
# timeout (> 10 s for one input) or out-of-memory (> 2048 MB) — fails the
# script (exit 1); the input that caused it is copied to
# BUILD_DIR/fuzz-findings/<name>/ and the log kept in
# BUILD_DIR/fuzz-logs/<name>.log. tests/fuzz/README.md says how to
# reproduce, minimise and add a finding to the corpus as a regression seed.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ $# -lt 1 ] || [ $# -gt 2 ]; then
  echo "usage: $0 BUILD_DIR [SECONDS=30]" >&2
  exit 2
fi
DIR=$1
SECONDS_EACH=${2:-30}
case "$SECONDS_EACH" in
  '' | *[!0-9]*)
    echo "fuzz: SECONDS must be a positive integer, got '$SECONDS_EACH'" >&2
    exit 2
    ;;
esac

# The harness names, from the committed corpora (one directory each).
harnesses=()
for corpus in tests/fuzz/corpus/*/; do
  harnesses+=("$(basename "$corpus")")
done
if [ -n "${FUZZ_ONLY:-}" ]; then
  read -r -a harnesses <<<"$FUZZ_ONLY"
fi

missing=0
for name in "${harnesses[@]}"; do
  if [ -z "$(find "$DIR" -type f -name "fuzz_$name" -perm -u+x 2>/dev/null)" ]; then
    echo "fuzz: $DIR has no fuzz_$name (configure with CC=clang-14" \
      "CXX=clang++-14 -DNNSERVE_FUZZ=ON and build the fuzz_* targets)" >&2
    missing=1
  fi
done
[ "$missing" -eq 0 ] || exit 1

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$DIR/fuzz-logs"

# ASan/UBSan settings unless the caller set them (scripts/asan.sh does):
# any report is fatal. libFuzzer itself detects leaks at exit of each input.
export ASAN_OPTIONS=${ASAN_OPTIONS:-halt_on_error=1:detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}

status=0
rows=()
for name in "${harnesses[@]}"; do
  binary=$(find "$DIR" -type f -name "fuzz_$name" -perm -u+x | head -n 1)
  corpus="$work/$name"
  artifacts="$work/$name-artifacts"
  mkdir -p "$corpus" "$artifacts"
  cp tests/fuzz/corpus/"$name"/* "$corpus"/
  log="$DIR/fuzz-logs/$name.log"
  result=ok
  # -max_len: larger than every seed; -timeout: per input; -rss_limit_mb:
  # the harnesses must never need more than this for inputs of this size.
  if ! "$binary" "$corpus" -max_total_time="$SECONDS_EACH" -max_len=8192 \
    -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$artifacts/" >"$log" 2>&1; then
    result=FAILED
    status=1
  fi
  if compgen -G "$artifacts/*" >/dev/null; then
    result=FAILED
    status=1
    mkdir -p "$DIR/fuzz-findings/$name"
    cp "$artifacts"/* "$DIR/fuzz-findings/$name/"
  fi
  # From libFuzzer's final stats and its last status line (absent when it
  # stopped at the first input).
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
  speed=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
  cov=$({ grep -o 'cov: [0-9]*' "$log" || true; } | tail -n 1 | cut -d' ' -f2)
  units=$({ grep -o 'corp: [0-9]*' "$log" || true; } | tail -n 1 | cut -d' ' -f2)
  rows+=("$(printf '%-14s %12s %10s %7s %7s  %s' "$name" "${runs:-?}" \
    "${speed:-?}" "${cov:-?}" "${units:-?}" "$result")")
  if [ "$result" != ok ]; then
    echo "fuzz: fuzz_$name found a problem; log: $log" >&2
    grep -E 'ERROR|FUZZ_CHECK|SUMMARY|runtime error|Test unit written' "$log" |
      head -n 20 >&2 || true
  fi
done

echo
echo "fuzz: ${SECONDS_EACH}s per harness, $(lscpu 2>/dev/null |
  sed -n 's/^Model name: *//p' | head -n 1)"
printf '%-14s %12s %10s %7s %7s  %s\n' harness executions exec/s cov corpus result
printf '%s\n' "${rows[@]}"
if [ "$status" -ne 0 ]; then
  echo "fuzz: FAILED (inputs in $DIR/fuzz-findings/, logs in $DIR/fuzz-logs/)" >&2
fi
exit "$status"
