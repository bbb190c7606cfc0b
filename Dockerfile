# nnserve container image (multi-stage, Debian 12 packages only).
#
#   docker build -t nnserve .            # or: podman build --format docker -t nnserve .
#   docker run -p 8000:8000 -p 50051:50051 -p 9464:9464 nnserve
#
# Ports: 8000 REST (Open Inference Protocol /v2/...), 50051 gRPC
# (nnserve.v1, inference.GRPCInferenceService, health, reflection), 9464
# Prometheus /metrics.
#
# Stage "build" compiles nnserve and nnserve-cli and runs the engine unit
# tests; stage "runtime" (the final image) holds only the shared libraries
# the binaries link, the two binaries and the example models in /models.
# It runs as a non-root numeric user, works with any UID (files are
# world-readable, nothing is written at run time) and with a read-only root
# filesystem. Settings come from NNSERVE_* environment variables (see
# deploy/README.md). Keep the package lists in step with
# scripts/install-deps.sh.

ARG DEBIAN_IMAGE=debian:bookworm-slim

FROM ${DEBIAN_IMAGE} AS build
ENV DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      build-essential cmake ninja-build pkg-config \
      libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler \
      grpc-proto libdnnl-dev ocl-icd-opencl-dev opencl-c-headers \
      prometheus-cpp-dev libabsl-dev libgtest-dev libgmock-dev \
      libcli11-dev nlohmann-json3-dev libspdlog-dev libfmt-dev \
      libcpp-httplib-dev libssl-dev \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /src
COPY . .

# Parallel compile jobs; empty = all cores.
ARG BUILD_JOBS=
RUN cmake -S . -B /build -G Ninja -DCMAKE_BUILD_TYPE=Release \
      -DNNSERVE_BUILD_TESTS=ON -DNNSERVE_BUILD_BENCH=OFF \
 && engine_tests=$(for f in tests/engine/*_test.cc; do basename "$f" .cc; done) \
 && cmake --build /build -j"${BUILD_JOBS:-$(nproc)}" \
      --target nnserve nnserve-cli ${engine_tests}

# The engine unit tests (CTest label "engine") must pass in the image's own
# userland before anything ships.
RUN ctest --test-dir /build -L engine --no-tests=error --output-on-failure \
      -j"${BUILD_JOBS:-$(nproc)}"

# What the runtime stage copies: stripped binaries and world-readable models.
RUN mkdir -p /out/bin \
 && cp /build/server/nnserve /build/client/nnserve-cli /out/bin/ \
 && strip --strip-unneeded /out/bin/* \
 && cp -R models /out/models \
 && chmod -R a+rX,go-w /out/models


FROM ${DEBIAN_IMAGE} AS runtime
# Exactly the shared libraries that ldd shows for nnserve and nnserve-cli
# (their own dependencies, e.g. libgrpc29 and libcivetweb1, come along).
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      libgrpc++1.51 libprotobuf32 libabsl20220623 \
      libdnnl2 ocl-icd-libopencl1 libgomp1 \
      libprometheus-cpp-core1.0 libprometheus-cpp-pull1.0 \
      libspdlog1.10 libfmt9 libcpp-httplib0.11 libssl3 \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/*.deb \
      /var/log/apt /var/log/dpkg.log \
 && useradd --system --uid 10001 --gid 0 --home-dir /nonexistent \
      --no-create-home --shell /usr/sbin/nologin nnserve

COPY --from=build /out/bin/ /usr/local/bin/
COPY --from=build /out/models/ /models/

# Fail the build if a library is missing or a shipped model does not load.
RUN missing=$(ldd /usr/local/bin/nnserve /usr/local/bin/nnserve-cli | grep 'not found' || true) \
 && if [ -n "$missing" ]; then \
      echo "runtime image lacks shared libraries:" >&2; echo "$missing" >&2; exit 1; \
    fi \
 && for m in /models/*/; do \
      nnserve inspect "$m" >/dev/null || { echo "model $m does not load" >&2; exit 1; }; \
    done

ENV NNSERVE_MODEL_REPOSITORY=/models \
    NNSERVE_GRPC_ADDRESS=0.0.0.0:50051 \
    NNSERVE_HTTP_ADDRESS=0.0.0.0:8000 \
    NNSERVE_METRICS_ADDRESS=0.0.0.0:9464 \
    NNSERVE_LOG_LEVEL=info \
    NNSERVE_ADDRESS=127.0.0.1:50051

LABEL org.opencontainers.image.title="nnserve" \
      org.opencontainers.image.description="gRPC and REST (Open Inference Protocol) model server for dense neural networks (oneDNN, CPU)"

USER 10001:0
WORKDIR /
EXPOSE 8000 50051 9464
# nnserve-cli health exits 0 only when the server reports SERVING; it talks
# to NNSERVE_ADDRESS (the local gRPC port above). gRPC rather than REST's
# /v2/health/ready (same meaning): the image has no HTTP client, and gRPC
# is always on while REST can be turned off (NNSERVE_HTTP_ADDRESS="").
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 \
  CMD ["nnserve-cli", "--timeout", "3", "health"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["nnserve"]
CMD ["serve"]
