#!/usr/bin/env bash
# Installs dependencies, builds, and serves the example models:
# gRPC on :50051 (nnserve.v1 and the Open Inference Protocol), REST (the
# Open Inference Protocol's HTTP/JSON binding) on :8000, Prometheus metrics
# on :9464.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh
BUILD_DIR=${BUILD_DIR:-build}
exec "$BUILD_DIR/server/nnserve" serve --model-repository models "$@"
