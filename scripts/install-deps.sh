#!/usr/bin/env bash
# Installs nnserve's build, test and run dependencies from Debian 12's own
# packages. Idempotent and quiet when everything is already installed.
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config ccache git
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  grpc-proto libdnnl-dev ocl-icd-opencl-dev opencl-c-headers
  prometheus-cpp-dev libabsl-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  libcli11-dev nlohmann-json3-dev libspdlog-dev libfmt-dev
  libcpp-httplib-dev libssl-dev
  python3-numpy python3-grpcio python3-grpc-tools python3-protobuf
  python3-sklearn python3-yaml
  prometheus clang-format curl openssl
  clang-14 libclang-rt-14-dev libomp-14-dev  # scripts/asan.sh (ASan+UBSan)
)
if [ "${NNSERVE_WITH_CONTAINERS:-0}" = 1 ]; then
  packages+=(podman runc debootstrap uidmap slirp4netns fuse-overlayfs)
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" \
    || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "Installing: ${missing[*]}"
sudo=""
[ "$(id -u)" -eq 0 ] || sudo=sudo
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq \
  -o DPkg::Lock::Timeout=600 --no-install-recommends "${missing[@]}" >/dev/null
