// `nnserve serve`: the long-running gRPC model server.
//
// Start-up: Prometheus exposer on --metrics-address (/metrics) → scan the
// model repository → gRPC server (Inference + grpc.health.v1.Health +
// reflection v1alpha) listening on --grpc-address with health NOT_SERVING →
// load and warm up every version of every model → health SERVING for ""
// and "nnserve.v1.Inference" → one machine-readable log line
//   event=serving grpc_port=NNNNN metrics_port=MMMMM
// and, with --port-file, the file "grpc_port metrics_port\n" (written
// atomically: temp file + rename). A load failure exits non-zero with the
// full validation message unless --allow-load-failures.
//
// Shutdown on SIGTERM/SIGINT (see signals.h): health NOT_SERVING, no new
// calls, in-flight calls finish (grpc::Server::Shutdown with a deadline of
// --shutdown-timeout; calls still running then are cancelled), workers
// joined, metrics endpoint stopped (it stays up during the drain), exit 0.
// Call BlockTerminationSignals() in main before RunServe.
//
// RunServe owns every server object for its duration; not re-entrant.
#ifndef NNSERVE_SERVER_SERVE_COMMAND_H_
#define NNSERVE_SERVER_SERVE_COMMAND_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"

namespace nnserve::server {

struct ServeOptions {
  std::string model_repository;
  std::string grpc_address = "0.0.0.0:50051";
  std::string metrics_address = "0.0.0.0:9464";
  int threads = 1;           // Inference workers.
  int intra_op_threads = 1;  // OpenMP threads per forward pass.
  int64_t max_batch_rows = 1024;
  int64_t max_message_bytes = 64 << 20;
  int64_t max_queued_requests = 256;
  int64_t inline_work_limit = 262144;
  // Dynamic batching and its server-wide defaults (config.pbtxt
  // dynamic_batching fields > 0 override them per model).
  bool dynamic_batching = true;
  int64_t batching_max_batch_rows = 64;
  int64_t batching_max_queue_delay_us = 0;
  int64_t batching_max_queue_size = 256;
  double shutdown_timeout_seconds = 30;
  bool allow_load_failures = false;
  bool layer_timing = true;
  std::string port_file;      // Empty: none.
  std::string build_version;  // Labels nnserve_build_info.
};

// Runs the server until a termination signal; OK after a clean shutdown.
// Errors (bad address, bad repository, load failure) are logged and
// returned.
absl::Status RunServe(const ServeOptions& options);

}  // namespace nnserve::server

#endif  // NNSERVE_SERVER_SERVE_COMMAND_H_
