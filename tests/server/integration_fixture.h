// Shared helpers for the server integration tests (tests/server/
// *_integration_test.cc): a temporary model repository, starting the real
// nnserve binary (tests/util/server_process.h) and waiting until gRPC health
// says SERVING, a connected nnserve::Client, and output comparison.
//
// Run them (each test starts its own nnserve on 127.0.0.1 with port 0):
//   cmake --build build --target nnserve server_predict_integration_test ...
//   ctest --test-dir build -R 'Integration|server_python_client' -j2
// or directly, with NNSERVE_BINARY=build/server/nnserve in the environment:
//   build/tests/server/server_predict_integration_test
// On failure the server's log tail is printed (ServerProcess destructor).
//
// Header-only so that the test utility library (tests/util) stays free of
// gRPC. Temporary repositories come from tests/util/model_builder.h
// (ScopedTempDir, WriteModelDir). Each object is owned by the test that creates
// it; nothing here is shared between threads except the Client (which is
// thread-safe).
#ifndef NNSERVE_TESTS_SERVER_INTEGRATION_FIXTURE_H_
#define NNSERVE_TESTS_SERVER_INTEGRATION_FIXTURE_H_

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "client/channel.h"
#include "client/client.h"
#include "client/rows.h"
#include "tests/util/model_builder.h"
#include "tests/util/reference.h"
#include "tests/util/server_process.h"

namespace nnserve::testing {

inline constexpr char kInferenceService[] = "nnserve.v1.Inference";

// A Client on a plaintext loopback channel with generous message limits.
inline absl::StatusOr<std::unique_ptr<Client>> ConnectClient(
    const std::string& target) {
  ChannelOptions options;
  options.target = target;
  options.max_message_bytes = 256 << 20;
  absl::StatusOr<std::shared_ptr<grpc::Channel>> channel = MakeChannel(options);
  if (!channel.ok()) return channel.status();
  return std::make_unique<Client>(*std::move(channel));
}

// Health of `service` on `client`, as a probe: true only for SERVING.
inline bool IsServing(const Client& client, const std::string& service) {
  CallOptions options;
  options.timeout = std::chrono::milliseconds(500);
  absl::StatusOr<ServingStatus> status = client.Health(service, options);
  return status.ok() && *status == ServingStatus::kServing;
}

// A running nnserve and a Client connected to it.
struct RunningServer {
  std::unique_ptr<ServerProcess> process;
  std::unique_ptr<Client> client;
};

// Starts nnserve with `options` (port 0 + --port-file), then waits until
// both health services ("" and nnserve.v1.Inference) say SERVING.
inline absl::StatusOr<RunningServer> StartServer(
    const ServerOptions& options,
    std::chrono::milliseconds timeout = std::chrono::seconds(60)) {
  RunningServer server;
  absl::StatusOr<std::unique_ptr<ServerProcess>> process =
      ServerProcess::Start(options, timeout);
  if (!process.ok()) return process.status();
  server.process = *std::move(process);
  absl::StatusOr<std::unique_ptr<Client>> client =
      ConnectClient(server.process->grpc_target());
  if (!client.ok()) return client.status();
  server.client = *std::move(client);
  const Client& c = *server.client;
  absl::Status serving = server.process->WaitUntil(
      [&c] { return IsServing(c, "") && IsServing(c, kInferenceService); },
      timeout, "health SERVING for \"\" and nnserve.v1.Inference");
  if (!serving.ok()) return serving;
  return server;
}

// The reference output of `model` for `batch` ([rows, output units],
// row-major, double precision; tests/util/reference.h).
inline std::vector<double> ReferenceOutput(const RandomModel& model,
                                           const RowBatch& batch) {
  return ReferenceForward(model.config, model.tensors, batch.values,
                          batch.rows);
}

// Index of the largest element of row `r` (first one on ties).
inline int ArgMaxRow(const std::vector<double>& values, int64_t cols,
                     int64_t r) {
  auto begin = values.begin() + r * cols;
  return static_cast<int>(std::max_element(begin, begin + cols) - begin);
}

}  // namespace nnserve::testing

#endif  // NNSERVE_TESTS_SERVER_INTEGRATION_FIXTURE_H_
