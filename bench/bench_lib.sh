# bench_lib.sh: shell helpers shared by the benchmark scripts in bench/
# (compare_transport.sh, batching_bench.sh). Source it after
# `set -euo pipefail`; it is not meant to be run on its own.
#
#   bench_init NAME        make the scratch dir $TMP (NAME.XXXXXX under
#                          $TMPDIR or /tmp), start PIDS=() and install an
#                          EXIT trap that stops every server and removes $TMP
#   start_server NAME CMD [ARG...]
#                          run CMD ARG... in the background with output to
#                          $TMP/NAME.log (CMD must write its port to
#                          $TMP/NAME.port), then set SERVER_ADDR to
#                          127.0.0.1:<port>, SERVER_PID[NAME] to its pid and
#                          METRICS_PORT[NAME] to the port file's second
#                          number (empty if none); exits if it does not start
#   cpu_ticks PID          print the process's user + system CPU time in
#                          clock ticks (getconf CLK_TCK per second)
#   model_sizes ADDR MODEL ask the server at ADDR (via $CLI) about MODEL and
#                          set INPUT_SIZE, OUTPUT_SIZE and LABEL_FLAG (empty,
#                          or --no-labels when the model has no labels)
#
# Uses $CLI (nnserve-cli) and $PY (python3), which the caller sets.

# shellcheck shell=bash
# shellcheck disable=SC2034  # the variables set here are for the caller.

# bench_init NAME: see above.
bench_init() {
  TMP=$(mktemp -d "${TMPDIR:-/tmp}/$1.XXXXXX")
  PIDS=()
  declare -gA SERVER_PID METRICS_PORT
  trap bench_cleanup EXIT
}

# bench_cleanup: stops every server in PIDS and removes $TMP (the EXIT trap).
bench_cleanup() {
  for pid in "${PIDS[@]}"; do
    kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in "${PIDS[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  rm -rf "$TMP"
}

# wait_for_port FILE PID NAME: echoes the first number in FILE once written.
wait_for_port() {
  local file=$1 pid=$2 name=$3
  for _ in $(seq 600); do
    if [ -s "$file" ]; then
      awk '{print $1; exit}' "$file"
      return 0
    fi
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "error: $name exited before serving; its log:" >&2
      cat "$TMP/$name.log" >&2
      return 1
    fi
    sleep 0.1
  done
  echo "error: $name did not start within 60 s" >&2
  return 1
}

# start_server NAME CMD [ARG...]: see above.
start_server() {
  local name=$1
  shift
  "$@" >"$TMP/$name.log" 2>&1 &
  PIDS+=($!)
  SERVER_PID[$name]=$!
  SERVER_ADDR=127.0.0.1:$(wait_for_port "$TMP/$name.port" "${PIDS[-1]}" \
    "$name")
  METRICS_PORT[$name]=$(awk '{print $2; exit}' "$TMP/$name.port")
}

# cpu_ticks PID: see above (fields 14 and 15 of /proc/PID/stat; the command
# name in field 2 may contain spaces, so count from the closing parenthesis).
cpu_ticks() {
  sed 's/^.*) //' "/proc/$1/stat" | awk '{print $12 + $13}'
}

# model_sizes ADDR MODEL: see above.
model_sizes() {
  local addr=$1 model=$2 info
  info="$TMP/info.$model.json"
  "$CLI" --address "$addr" --json info --model "$model" >"$info"
  read -r INPUT_SIZE OUTPUT_SIZE HAS_LABELS < <("$PY" -c '
import json, sys
info = json.load(open(sys.argv[1]))
print(int(info["input_size"]), int(info["output_size"]), 1 if info["labels"] else 0)
' "$info")
  LABEL_FLAG=()
  [ "$HAS_LABELS" = 1 ] || LABEL_FLAG=(--no-labels)
}
