#!/usr/bin/env bash
# ThreadSanitizer stage: builds the tests that run no gRPC server code —
# tests/engine, tests/server/scheduling and tests/server/lifecycle — with
# -fsanitize=thread in their own build directory (build-tsan/) and runs
# them. Only those test targets and what they link are built, never the
# whole tree. A data race, lock-order inversion or thread leak reported in
# nnserve code fails the stage; reports inside oneDNN and OpenMP, which
# Debian does not build with TSan, are suppressed by scripts/tsan.supp.
# Debian's Abseil is not built with TSan either: the tests run with
# tests/tsan/ (nnserve_tsan_abseil) preloaded, which tells TSan how
# absl::Mutex, CondVar and Notification synchronise.
#
#   scripts/tsan.sh               # configure, build, run
#   TSAN_JOBS=1 scripts/tsan.sh   # build with one job (default: nproc)
#   TSAN_BUILD_DIR=dir            # default build-tsan
#
# gRPC and Abseil come uninstrumented from Debian, which is why tests that
# start a server or call through gRPC are not part of this stage.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh   # gcc's libtsan comes with build-essential

DIR=${TSAN_BUILD_DIR:-build-tsan}
JOBS=${TSAN_JOBS:-$(nproc)}
start=$(date +%s)

# -O1 -g1 (line tables): what TSan's reports need, and a third less
# compile time than RelWithDebInfo's -O2 -g for these gtest-heavy files.
cmake -S . -B "$DIR" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_CXX_FLAGS=-fsanitize=thread \
  "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O1 -g1 -DNDEBUG" \
  -DCMAKE_EXE_LINKER_FLAGS=-fsanitize=thread \
  -DCMAKE_SHARED_LINKER_FLAGS=-fsanitize=thread \
  -DNNSERVE_BUILD_BENCH=OFF >/dev/null

# The test executables of the folders above, named as tests/CMakeLists.txt
# and tests/server/CMakeLists.txt name them.
targets=()
for src in tests/engine/*_test.cc; do
  targets+=("$(basename "$src" .cc)")
done
for src in tests/server/scheduling/*_test.cc tests/server/lifecycle/*_test.cc; do
  [ -e "$src" ] || continue
  name=$(basename "$src" .cc)
  case "$name" in server_*) ;; *) name="server_$name" ;; esac
  targets+=("$name")
done

cmake --build "$DIR" --target nnserve_tsan_abseil "${targets[@]}" -j"$JOBS" >"$DIR/tsan-build.log" 2>&1 || {
  tail -n 60 "$DIR/tsan-build.log"
  echo "tsan: build failed (full log: $DIR/tsan-build.log)" >&2
  exit 1
}
built=$(date +%s)

# gcc 12's TSan cannot map its shadow memory when the kernel randomizes
# mmap with more than 28 bits (newer distribution kernels): run without
# address randomization there.
run=()
if [ "$(cat /proc/sys/vm/mmap_rnd_bits 2>/dev/null || echo 0)" -gt 28 ]; then
  run=(setarch "$(uname -m)" -R)
fi

preload="$(cd "$DIR" && pwd)/tests/tsan/libnnserve_tsan_abseil.so"
export TSAN_OPTIONS="suppressions=$PWD/scripts/tsan.supp halt_on_error=0 second_deadlock_stack=1 exitcode=66 ${TSAN_OPTIONS:-}"
mkdir -p "$DIR/tsan-logs"
failed=()
for target in "${targets[@]}"; do
  binary=$(find "$DIR/tests" -type f -name "$target" -perm -u+x | head -n 1)
  if [ -z "$binary" ]; then
    echo "tsan: $target was not built" >&2
    failed+=("$target")
    continue
  fi
  log="$DIR/tsan-logs/$target.log"
  # Tests run from the source root, as CTest runs them (WORKING_DIRECTORY).
  # Only the test program gets the preload (not timeout or setarch).
  status=0
  timeout 900 "${run[@]}" env LD_PRELOAD="$preload" "$binary" \
    --gtest_brief=1 >"$log" 2>&1 || status=$?
  if [ "$status" -ne 0 ]; then
    echo "tsan: $target FAILED (exit $status); its output:"
    grep -v '^\[       OK \]' "$log" | tail -n 200
    failed+=("$target")
  fi
done

end=$(date +%s)
if [ ${#failed[@]} -gt 0 ]; then
  echo "tsan: failed: ${failed[*]} (logs in $DIR/tsan-logs/)" >&2
  exit 1
fi
echo "tsan: ${#targets[@]} test programs passed under ThreadSanitizer" \
  "(build $((built - start)) s, run $((end - built)) s)"
