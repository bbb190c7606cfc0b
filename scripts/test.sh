#!/usr/bin/env bash
# The one test command: installs dependencies, builds, runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."
NNSERVE_WITH_CONTAINERS=1 scripts/install-deps.sh   # the suite includes the podman container test
scripts/build.sh
BUILD_DIR=${BUILD_DIR:-build}
ctest --test-dir "$BUILD_DIR" --output-on-failure -j"$(nproc)" "$@"
# ThreadSanitizer stage: engine, scheduling and lifecycle tests (build-tsan/).
scripts/tsan.sh
# AddressSanitizer+UBSan stage (clang-14): engine, formats, server and client
# tests, integration tests included, and the fuzz harnesses (build-asan/).
scripts/asan.sh
