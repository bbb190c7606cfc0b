#!/usr/bin/env bash
# Container test: builds the repository's Dockerfile with podman (no Docker
# engine, no registry: the base debian:bookworm-slim is made locally by
# container_base.sh), then runs the image and checks it from the host:
#   1. image size < 200 MB, numeric non-root user, HEALTHCHECK kept;
#   2. run with gRPC, REST and metrics published on 127.0.0.1 (free ports):
#      wait for SERVING, ListModels/ModelInfo/Predict for every model
#      (nnserve_grpc.py), REST /v2/health/ready and a digits infer (curl),
#      scrape /metrics (per-layer series, promtool check metrics),
#      `podman healthcheck run`;
#   3. SIGTERM -> exit code 0 and a clean shutdown log;
#   4. the same with --user 12345 --read-only --cap-drop ALL.
# Everything it creates (containers, image, podman storage, config) lives
# under one temporary folder and is removed on exit, also on failure; only
# the debootstrap base tarball is kept (cache) between runs.
#
# Usage: container_test.sh [SOURCE_DIR]   (root; CTest label "container")
# Installs podman, runc and debootstrap with apt-get if they are missing.
set -euo pipefail

script_dir=$(cd "$(dirname "$0")" && pwd)
src=$(cd "${1:-$script_dir/../..}" && pwd)
python=/usr/bin/python3
image=localhost/nnserve:container-test
max_image_bytes=$((200 * 1000 * 1000))
t0=$(date +%s)

log() { echo "[container_test +$(( $(date +%s) - t0 ))s] $*"; }
die() { echo "[container_test] FAILED: $*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "must run as root (rootful podman and debootstrap); uid is $(id -u)"

# --- tools ---------------------------------------------------------------
need=()
for tool in podman:podman runc:runc debootstrap:debootstrap; do
  command -v "${tool%%:*}" >/dev/null || need+=("${tool#*:}")
done
if [ ${#need[@]} -gt 0 ]; then
  log "installing ${need[*]} (apt-get)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -o DPkg::Lock::Timeout=600 \
    --no-install-recommends "${need[@]}" >/dev/null
fi
for tool in curl promtool; do
  command -v "$tool" >/dev/null || die "$tool is missing (scripts/install-deps.sh installs it)"
done

# --- private podman configuration and storage ------------------------------
# A run killed without its trap (e.g. SIGKILL on a CTest timeout) leaves its
# folder behind: remove those older than 3 hours (no test runs that long).
find /var/tmp -maxdepth 1 -name 'nnserve-container-test.*' -mmin +180 2>/dev/null |
  while read -r stale; do
    log "removing stale $stale"
    awk -v w="$stale" '$2 ~ "^"w {print $2}' /proc/mounts | sort -r |
      while read -r m; do umount -l "$m" 2>/dev/null; done
    rm -rf "$stale"
  done
work=$(mktemp -d /var/tmp/nnserve-container-test.XXXXXX)
containers=()
cleanup() {
  local rc=$?
  set +e
  if [ "$rc" -ne 0 ]; then
    for c in "${containers[@]}"; do
      echo "----- podman logs $c (last 40 lines) -----" >&2
      podman logs --tail 40 "$c" >&2 2>&1
    done
  fi
  for c in "${containers[@]}"; do podman rm -f -t 0 "$c" >/dev/null 2>&1; done
  podman rmi -a -f >/dev/null 2>&1
  # Unmount anything podman left mounted under our folder, deepest first.
  awk -v w="$work" '$2 ~ "^"w {print $2}' /proc/mounts | sort -r |
    while read -r m; do umount -l "$m" 2>/dev/null; done
  rm -rf "$work"
  log "cleaned up (exit code $rc, total $(( $(date +%s) - t0 ))s)"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

nofile=$(ulimit -Hn)
[ "$nofile" = unlimited ] && nofile=1048576
mkdir -p "$work/storage" "$work/run" "$work/tmp" "$work/volumes" "$work/networks"
cat >"$work/containers.conf" <<EOF
[containers]
default_ulimits = ["nofile=$nofile:$nofile", "nproc=32768:32768"]

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "$work/events.log"
tmp_dir = "$work/tmp"
volume_path = "$work/volumes"

[network]
network_config_dir = "$work/networks"
EOF
cat >"$work/storage.conf" <<EOF
[storage]
driver = "overlay"
graphroot = "$work/storage"
runroot = "$work/run"
EOF
export CONTAINERS_CONF="$work/containers.conf"
export CONTAINERS_STORAGE_CONF="$work/storage.conf"
export TMPDIR="$work/tmp"

# --- base image and build ----------------------------------------------------
base=$("$script_dir/container_base.sh")
log "importing base $base as debian:bookworm-slim"
podman import --change 'CMD ["bash"]' "$base" debian:bookworm-slim >/dev/null

log "podman build (compiles nnserve and runs the engine tests inside; several minutes)"
build_start=$(date +%s)
podman build --format docker --pull=never --network host \
  --build-arg BUILD_JOBS="$(nproc)" -t "$image" -f "$src/Dockerfile" "$src" \
  >"$work/build.log" 2>&1 || { tail -n 60 "$work/build.log" >&2; die "podman build failed (log above)"; }
build_s=$(( $(date +%s) - build_start ))
grep -E "tests passed|Test +#" "$work/build.log" | tail -n 3 | cut -c1-120 || true
log "image built in ${build_s}s"

# --- image properties --------------------------------------------------------
size=$(podman image inspect --format '{{.Size}}' "$image")
log "image size: $size bytes ($(( size / 1000000 )) MB)"
[ "$size" -lt "$max_image_bytes" ] || die "image is $size bytes, limit $max_image_bytes"
user=$(podman image inspect --format '{{.Config.User}}' "$image")
[[ "$user" =~ ^[1-9][0-9]*(:[0-9]+)?$ ]] || die "image user is '$user', expected a numeric non-root UID"
health=$(podman image inspect --format '{{json .Config.Healthcheck}}' "$image")
[[ "$health" == *nnserve-cli* ]] || die "image has no nnserve-cli HEALTHCHECK (got $health)"
if podman run --rm --entrypoint sh "$image" -c \
  'for t in cmake c++ gcc; do command -v "$t" && exit 0; done; exit 1' >/dev/null 2>&1; then
  die "the runtime image contains a compiler or cmake"
fi

PYTHONDONTWRITEBYTECODE=1 NNSERVE_SOURCE_DIR="$src" "$python" "$script_dir/nnserve_grpc.py" \
  layers --repository "$src/models" >"$work/layers.txt"
[ -s "$work/layers.txt" ] || die "no model layers found under $src/models"

free_port() {
  "$python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# run_and_check NAME [podman run options...]
run_and_check() {
  local name=$1; shift
  local grpc_port metrics_port http_port
  grpc_port=$(free_port); metrics_port=$(free_port); http_port=$(free_port)
  [ "$grpc_port" != "$metrics_port" ] || metrics_port=$(free_port)
  while [ "$http_port" = "$grpc_port" ] || [ "$http_port" = "$metrics_port" ]; do
    http_port=$(free_port)
  done
  log "[$name] podman run $* (gRPC 127.0.0.1:$grpc_port, REST 127.0.0.1:$http_port, metrics 127.0.0.1:$metrics_port)"
  containers+=("$name")
  podman run -d --name "$name" -p "127.0.0.1:$grpc_port:50051" \
    -p "127.0.0.1:$http_port:8000" \
    -p "127.0.0.1:$metrics_port:9464" "$@" "$image" >/dev/null 2>"$work/$name.run.err" \
    || { cat "$work/$name.run.err" >&2; die "[$name] podman run failed"; }

  # Health, ListModels, ModelInfo and Predict of every model, from the host.
  NNSERVE_SOURCE_DIR="$src" PYTHONDONTWRITEBYTECODE=1 "$python" \
    "$script_dir/nnserve_grpc.py" check --address "127.0.0.1:$grpc_port" \
    --repository "$src/models" --wait 120 || die "[$name] gRPC checks failed"

  # REST (the image's default NNSERVE_HTTP_ADDRESS, port 8000): ready, and
  # one digits row whose answer has the model's name and output shape.
  local rest=http://127.0.0.1:$http_port
  curl -fsS --max-time 10 "$rest/v2/health/ready" >"$work/$name.ready" \
    || die "[$name] GET $rest/v2/health/ready failed"
  grep -q '"ready": *true' "$work/$name.ready" \
    || die "[$name] /v2/health/ready: $(cat "$work/$name.ready")"
  "$python" -c 'import json; print(json.dumps({"inputs": [{"name": "pixels",
    "datatype": "FP32", "shape": [1, 64], "data": [0.5] * 64}]}))' >"$work/infer.json"
  curl -fsS --max-time 10 -H 'Content-Type: application/json' \
    --data-binary @"$work/infer.json" "$rest/v2/models/digits/infer" >"$work/$name.infer" \
    || die "[$name] POST $rest/v2/models/digits/infer failed"
  "$python" -c 'import json, sys
r = json.load(open(sys.argv[1]))
assert r["model_name"] == "digits" and r["outputs"][0]["shape"] == [1, 10], r' \
    "$work/$name.infer" || die "[$name] unexpected infer answer: $(cat "$work/$name.infer")"

  # Metrics: one per-layer histogram series for every layer of every model.
  curl -fsS --max-time 10 "http://127.0.0.1:$metrics_port/metrics" >"$work/$name.metrics" \
    || die "[$name] cannot scrape http://127.0.0.1:$metrics_port/metrics"
  local model layer
  while read -r model layer; do
    grep -Eq "^nnserve_layer_duration_seconds_count\{([^}]*,)?layer=\"$layer\",([^}]*,)?model=\"$model\"" \
      "$work/$name.metrics" \
      || grep -Eq "^nnserve_layer_duration_seconds_count\{([^}]*,)?model=\"$model\",([^}]*,)?layer=\"$layer\"" \
      "$work/$name.metrics" \
      || die "[$name] no nnserve_layer_duration_seconds series for model $model layer $layer"
  done <"$work/layers.txt"
  promtool check metrics <"$work/$name.metrics" || die "[$name] promtool check metrics failed"

  # The image's own HEALTHCHECK (nnserve-cli health inside the container).
  podman healthcheck run "$name" 2>"$work/$name.hc.err" \
    || { cat "$work/$name.hc.err" >&2; die "[$name] podman healthcheck run: unhealthy"; }
  log "[$name] gRPC, REST, metrics and healthcheck OK"

  # SIGTERM: drain and exit 0 with a shutdown log line.
  podman kill -s TERM "$name" >/dev/null
  local code
  code=$(timeout 60 podman wait "$name") || die "[$name] did not exit within 60 s of SIGTERM"
  podman logs "$name" >"$work/$name.log" 2>&1
  [ "$code" = 0 ] || { tail -n 20 "$work/$name.log" >&2; die "[$name] exit code $code after SIGTERM"; }
  grep -Eqi "shutdown.complete" "$work/$name.log" || { tail -n 20 "$work/$name.log" >&2; die "[$name] no shutdown-complete line in the log"; }
  if grep -Ei "level=(error|critical)|\[(error|critical)\]|terminate called|Segmentation" "$work/$name.log"; then
    die "[$name] errors in the log (above)"
  fi
  log "[$name] SIGTERM -> exit 0, clean shutdown log"
}

run_and_check nnserve-ct-default
run_and_check nnserve-ct-hardened --user 12345 --read-only --read-only-tmpfs=false --cap-drop ALL \
  --security-opt no-new-privileges

log "PASSED: image $(( size / 1000000 )) MB, build ${build_s}s, total $(( $(date +%s) - t0 ))s"
