// `nnserve serve`: the long-running gRPC model server.
//
// Objects, in construction order: ServerMetrics (+ Prometheus exposer on
// --metrics-address, /metrics) → Scheduler → ModelRegistry →
// ModelLifecycle → InferenceService, ModelRepositoryService and the Open
// Inference Protocol's GRPCInferenceService on one gRPC server
// (+ grpc.health.v1.Health + reflection v1alpha) → the Open Inference
// Protocol's REST binding on --http-address (server/http/rest_server.h).
//
// Start-up: the gRPC server listens on --grpc-address with health
// NOT_SERVING → the lifecycle scans the repository and loads (and warms
// up) what --model-control-mode selects → health SERVING for "" and
// "nnserve.v1.Inference" → one machine-readable log line
//   event=serving grpc_port=NNNNN metrics_port=MMMMM http_port=HHHHH
// and, with --port-file, the file "grpc_port metrics_port http_port\n"
// (http_port 0 without --http-address; written
// atomically: temp file + rename). In mode none a load failure exits
// non-zero with the full validation message unless --allow-load-failures;
// poll and explicit never refuse to start because of a bad model.
//
// While serving, health stays SERVING through reloads; SIGHUP makes the
// lifecycle rescan the repository (mode poll).
//
// Shutdown on SIGTERM/SIGINT (see signals.h): health NOT_SERVING → calls
// still served for --drain-seconds (so balancers can move away) → both
// services (and REST, 503) refuse new calls with UNAVAILABLE → calls already
// accepted (and loads asked for over the ModelRepository service) finish, up to
// --shutdown-timeout → the lifecycle stops → the scheduler joins its
// workers → the metrics endpoint stops (it stays up during the drain) →
// the process exits 0 without shutting the gRPC server down, so that no
// caller is ever answered CANCELLED (why: see the end of RunServe). A
// caller sees OK or UNAVAILABLE, never anything else, because the server
// is going away. Call BlockServerSignals() in main before RunServe.
//
// RunServe owns every server object for its duration; not re-entrant.
#ifndef NNSERVE_SERVER_SERVE_COMMAND_H_
#define NNSERVE_SERVER_SERVE_COMMAND_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "server/lifecycle/model_lifecycle.h"
#include "server/tls/tls_credentials.h"

namespace nnserve::server {

struct ServeOptions {
  std::string model_repository;
  std::string grpc_address = "0.0.0.0:50051";
  std::string metrics_address = "0.0.0.0:9464";
  // The Open Inference Protocol's REST binding; empty: none.
  std::string http_address = "0.0.0.0:8000";
  int http_threads = 32;     // civetweb threads: concurrent REST connections.
  int threads = 1;           // Inference workers.
  int intra_op_threads = 1;  // OpenMP threads per forward pass.
  int64_t max_batch_rows = 1024;
  // The gRPC message limit (received and sent); 0: derived from the models
  // in the repository at start-up (server/lifecycle/message_limit.h).
  int64_t max_message_bytes = 0;
  // The memory budget of calls in flight: half of it is the gRPC resource
  // quota (the transport's buffers: messages being received, responses
  // being sent), an eighth the default of max_queued_bytes.
  int64_t max_memory_bytes = int64_t{1} << 30;
  // Bytes of the input and output tensors of queued calls before
  // RESOURCE_EXHAUSTED; 0: an eighth of max_memory_bytes.
  int64_t max_queued_bytes = 0;
  // HTTP/2 streams (calls in flight) per client connection.
  int max_concurrent_streams = 256;
  int64_t max_queued_requests = 256;
  int64_t inline_work_limit = 262144;
  // Dynamic batching and its server-wide defaults (config.pbtxt
  // dynamic_batching fields > 0 override them per model).
  bool dynamic_batching = true;
  int64_t batching_max_batch_rows = 64;
  int64_t batching_max_queue_delay_us = 0;
  int64_t batching_max_queue_size = 256;
  // On SIGTERM: seconds calls are still served after health turns
  // NOT_SERVING (for balancers to move away), then the seconds accepted
  // calls get to finish.
  double drain_seconds = 0;
  double shutdown_timeout_seconds = 30;
  // Model control (see model_lifecycle.h): none, poll or explicit; the poll
  // interval; the models explicit mode loads at start-up ("*" = all); how
  // many models load at once.
  ModelControlMode model_control_mode = ModelControlMode::kNone;
  double repository_poll_seconds = 5;
  std::vector<std::string> load_models;
  int model_load_threads = 1;
  bool allow_load_failures = false;
  bool layer_timing = true;
  // --tls-*: plaintext, TLS or mutual TLS (server/tls/tls_credentials.h),
  // checked before anything listens.
  TlsOptions tls;
  std::string port_file;      // Empty: none.
  std::string build_version;  // Labels nnserve_build_info.
};

// Runs the server until a termination signal, then drains and ends the
// process with exit code 0 (it does not return). Errors before that (bad
// address, bad repository, load failure) are logged and returned.
absl::Status RunServe(const ServeOptions& options);

}  // namespace nnserve::server

#endif  // NNSERVE_SERVER_SERVE_COMMAND_H_
