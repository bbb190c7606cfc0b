// nnserve: the model-serving binary. Subcommands:
//   serve    run the gRPC server (see server/serve_command.h)
//   inspect  describe a model directory (server/inspect_command.h)
//   run      offline forward pass (server/run_command.h)
#include <cstdlib>
#include <iostream>
#include <thread>

#include "CLI/CLI.hpp"
#include "absl/synchronization/mutex.h"
#include "server/commands/inspect_command.h"
#include "server/commands/run_command.h"
#include "server/observability/logging.h"
#include "server/serve_command.h"
#include "server/signals.h"

namespace {

int ReportError(const absl::Status& status) {
  std::cerr << "error: " << status.message() << "\n";
  return EXIT_FAILURE;
}

}  // namespace

int main(int argc, char** argv) {
  // Debian's Abseil checks every mutex acquisition for lock-order cycles
  // (~3 % of the server's CPU under load, inside gRPC); the server's own
  // locks are simple and tested, so the check only costs.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  using nnserve::server::ServeOptions;
  CLI::App app{"nnserve: serves dense neural networks over gRPC"};
  app.require_subcommand(1);
  // Global options (--log-level) are also accepted after the subcommand.
  app.fallthrough();
  std::string log_level = "info";
  app.add_option("--log-level", log_level,
                 "trace, debug, info, warn, error, critical or off")
      ->envname("NNSERVE_LOG_LEVEL")
      ->capture_default_str();

  // serve
  ServeOptions serve;
  serve.model_repository = NNSERVE_SOURCE_MODELS_DIR;
  serve.threads =
      static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  serve.build_version = NNSERVE_VERSION_STRING;
  CLI::App* serve_cmd = app.add_subcommand("serve", "Run the gRPC server");
  serve_cmd
      ->add_option("--model-repository", serve.model_repository,
                   "Directory with <model>/config.pbtxt and versions")
      ->envname("NNSERVE_MODEL_REPOSITORY")
      ->capture_default_str();
  serve_cmd
      ->add_option("--grpc-address", serve.grpc_address,
                   "gRPC listen address host:port (port 0 = any)")
      ->envname("NNSERVE_GRPC_ADDRESS")
      ->capture_default_str();
  serve_cmd
      ->add_option("--metrics-address", serve.metrics_address,
                   "Prometheus /metrics listen address host:port")
      ->envname("NNSERVE_METRICS_ADDRESS")
      ->capture_default_str();
  serve_cmd
      ->add_option("--http-address", serve.http_address,
                   "Open Inference Protocol REST/JSON listen address "
                   "host:port (empty: no REST endpoint)")
      ->envname("NNSERVE_HTTP_ADDRESS")
      ->capture_default_str();
  serve_cmd
      ->add_option("--http-threads", serve.http_threads,
                   "REST worker threads: connections served at once (a "
                   "kept-alive connection holds one)")
      ->envname("NNSERVE_HTTP_THREADS")
      ->check(CLI::Range(1, 1024))
      ->capture_default_str();
  serve_cmd
      ->add_option("--threads", serve.threads,
                   "Inference worker threads (default: hardware cores)")
      ->envname("NNSERVE_THREADS")
      ->check(CLI::Range(1, 1024))
      ->capture_default_str();
  serve_cmd
      ->add_option("--intra-op-threads", serve.intra_op_threads,
                   "OpenMP threads per forward pass")
      ->envname("NNSERVE_INTRA_OP_THREADS")
      ->check(CLI::Range(1, 1024))
      ->capture_default_str();
  serve_cmd
      ->add_option("--max-batch-rows", serve.max_batch_rows,
                   "Largest batch accepted per request")
      ->envname("NNSERVE_MAX_BATCH_ROWS")
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 30))
      ->capture_default_str();
  serve_cmd
      ->add_option("--max-message-bytes", serve.max_message_bytes,
                   "Largest gRPC message received or sent (default: the "
                   "largest request or response of the models in the "
                   "repository at start-up with --max-batch-rows rows, at "
                   "least 4 MiB; logged as event=message_limit)")
      ->envname("NNSERVE_MAX_MESSAGE_BYTES")
      ->check(CLI::Range(int64_t{1024}, int64_t{2147483647}));
  serve_cmd
      ->add_option("--max-memory-bytes", serve.max_memory_bytes,
                   "Memory budget of calls in flight: half is the gRPC "
                   "resource quota (transport buffers), an eighth the "
                   "default of --max-queued-bytes")
      ->envname("NNSERVE_MAX_MEMORY_BYTES")
      ->check(CLI::Range(int64_t{1} << 20, int64_t{1} << 50))
      ->capture_default_str();
  serve_cmd
      ->add_option("--max-queued-bytes", serve.max_queued_bytes,
                   "Bytes of input and output tensors of queued requests "
                   "before RESOURCE_EXHAUSTED (default: an eighth of "
                   "--max-memory-bytes)")
      ->envname("NNSERVE_MAX_QUEUED_BYTES")
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 50));
  serve_cmd
      ->add_option("--max-concurrent-streams", serve.max_concurrent_streams,
                   "Calls in flight per client connection (HTTP/2 streams)")
      ->envname("NNSERVE_MAX_CONCURRENT_STREAMS")
      ->check(CLI::Range(1, 1 << 20))
      ->capture_default_str();
  serve_cmd
      ->add_option("--max-queued-requests", serve.max_queued_requests,
                   "Requests waiting for an inference worker before "
                   "RESOURCE_EXHAUSTED")
      ->envname("NNSERVE_MAX_QUEUED_REQUESTS")
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 20))
      ->capture_default_str();
  serve_cmd
      ->add_option("--inline-work-limit", serve.inline_work_limit,
                   "Forwards with rows x parameters up to this run on "
                   "the gRPC thread; larger ones on the workers")
      ->envname("NNSERVE_INLINE_WORK_LIMIT")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  serve_cmd
      ->add_option("--dynamic-batching", serve.dynamic_batching,
                   "Merge concurrent Predict calls per model version into "
                   "one forward pass (true/false)")
      ->envname("NNSERVE_DYNAMIC_BATCHING")
      ->capture_default_str();
  serve_cmd
      ->add_option("--batching-max-batch-rows", serve.batching_max_batch_rows,
                   "Default most rows per merged forward pass")
      ->envname("NNSERVE_BATCHING_MAX_BATCH_ROWS")
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 30))
      ->capture_default_str();
  serve_cmd
      ->add_option("--batching-max-queue-delay-us",
                   serve.batching_max_queue_delay_us,
                   "Default longest wait for a batch to fill (0 = never "
                   "wait idle)")
      ->envname("NNSERVE_BATCHING_MAX_QUEUE_DELAY_US")
      ->check(CLI::Range(int64_t{0}, int64_t{60000000}))
      ->capture_default_str();
  serve_cmd
      ->add_option("--batching-max-queue-size", serve.batching_max_queue_size,
                   "Default most calls queued per model version before "
                   "RESOURCE_EXHAUSTED")
      ->envname("NNSERVE_BATCHING_MAX_QUEUE_SIZE")
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 20))
      ->capture_default_str();
  serve_cmd
      ->add_option("--drain-seconds", serve.drain_seconds,
                   "Seconds calls are still served after SIGTERM turns "
                   "health NOT_SERVING (for load balancers to move away)")
      ->envname("NNSERVE_DRAIN_SECONDS")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  serve_cmd
      ->add_option("--shutdown-timeout", serve.shutdown_timeout_seconds,
                   "Seconds in-flight calls get to finish on SIGTERM")
      ->envname("NNSERVE_SHUTDOWN_TIMEOUT")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  serve_cmd
      ->add_flag("--allow-load-failures", serve.allow_load_failures,
                 "Mode none: serve the models that load and list failed "
                 "versions instead of exiting")
      ->envname("NNSERVE_ALLOW_LOAD_FAILURES");
  std::string control_mode = "none";
  serve_cmd
      ->add_option("--model-control-mode", control_mode,
                   "none: load at start-up only; poll: also reload what "
                   "changes in the repository (every "
                   "--repository-poll-seconds and on SIGHUP); explicit: "
                   "load --load-model models, then the ModelRepository "
                   "LoadModel/UnloadModel RPCs decide")
      ->envname("NNSERVE_MODEL_CONTROL_MODE")
      ->check(CLI::IsMember({"none", "poll", "explicit"}))
      ->capture_default_str();
  serve_cmd
      ->add_option("--repository-poll-seconds", serve.repository_poll_seconds,
                   "Seconds between repository scans in mode poll")
      ->envname("NNSERVE_REPOSITORY_POLL_SECONDS")
      ->check(CLI::Range(0.01, 86400.0))
      ->capture_default_str();
  serve_cmd
      ->add_option("--load-model", serve.load_models,
                   "Mode explicit: a model to load at start-up (repeatable; "
                   "'*' = all; the environment variable takes a "
                   "comma-separated list)")
      ->envname("NNSERVE_LOAD_MODEL")
      ->delimiter(',');
  serve_cmd
      ->add_option("--model-load-threads", serve.model_load_threads,
                   "Models loading at once (each load holds one extra copy "
                   "of a model in memory until it serves)")
      ->envname("NNSERVE_MODEL_LOAD_THREADS")
      ->check(CLI::Range(1, 64))
      ->capture_default_str();
  serve_cmd
      ->add_option("--layer-timing", serve.layer_timing,
                   "Export per-layer latency (true/false)")
      ->envname("NNSERVE_LAYER_TIMING")
      ->capture_default_str();
  serve_cmd
      ->add_option("--port-file", serve.port_file,
                   "Write \"grpc_port metrics_port\\n\" here once serving")
      ->envname("NNSERVE_PORT_FILE");
  serve_cmd
      ->add_option("--tls-cert-file", serve.tls.cert_file,
                   "PEM server certificate chain: with --tls-key-file, "
                   "gRPC uses TLS (re-read when it changes)")
      ->envname("NNSERVE_TLS_CERT_FILE");
  serve_cmd
      ->add_option("--tls-key-file", serve.tls.key_file,
                   "PEM private key of --tls-cert-file (unencrypted)")
      ->envname("NNSERVE_TLS_KEY_FILE");
  serve_cmd
      ->add_option("--tls-client-ca-file", serve.tls.client_ca_file,
                   "PEM CA certificates: clients must present a "
                   "certificate they issued (mutual TLS)")
      ->envname("NNSERVE_TLS_CLIENT_CA_FILE");
  serve_cmd
      ->add_option("--tls-reload-seconds", serve.tls.reload_seconds,
                   "Seconds between checks of the TLS files for changes")
      ->envname("NNSERVE_TLS_RELOAD_SECONDS")
      ->check(CLI::Range(1, 86400))
      ->capture_default_str();

  // inspect
  std::string inspect_dir;
  int64_t inspect_version = 0;
  CLI::App* inspect_cmd =
      app.add_subcommand("inspect", "Describe a model directory");
  inspect_cmd->add_option("MODEL_DIR", inspect_dir, "Model directory")
      ->required();
  inspect_cmd
      ->add_option("--version", inspect_version, "Model version (0 = newest)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  std::string inspect_precision;
  inspect_cmd->add_option(
      "--precision", inspect_precision,
      "Load in fp32, bf16 or int8 instead of config.pbtxt's precision");

  // run
  nnserve::server::RunOptions run;
  std::string run_dir;
  CLI::App* run_cmd = app.add_subcommand("run", "Offline forward pass");
  run_cmd->add_option("MODEL_DIR", run_dir, "Model directory")->required();
  run_cmd->add_option("--version", run.version, "Model version (0 = newest)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  run_cmd
      ->add_option("--input", run.input,
                   "Input rows: .npy or CSV file; '-' = .npy or CSV on stdin")
      ->capture_default_str();
  run_cmd->add_option("--output", run.output,
                      "Write the outputs as a float32 .npy file");
  run_cmd
      ->add_option("--intra-op-threads", run.intra_op_threads,
                   "OpenMP threads for the forward pass")
      ->check(CLI::Range(1, 1024))
      ->capture_default_str();
  run_cmd->add_option(
      "--precision", run.precision,
      "Run in fp32, bf16 or int8 instead of config.pbtxt's precision");

  CLI11_PARSE(app, argc, argv);

  if (absl::Status s = nnserve::server::InitLogging(log_level); !s.ok()) {
    return ReportError(s);
  }
  if (serve_cmd->parsed()) {
    // IsMember above accepted it.
    serve.model_control_mode =
        *nnserve::server::ParseModelControlMode(control_mode);
    // Before any thread exists, so every thread inherits the blocked mask.
    nnserve::server::BlockServerSignals();
    return nnserve::server::RunServe(serve).ok() ? EXIT_SUCCESS : EXIT_FAILURE;
  }
  if (inspect_cmd->parsed()) {
    absl::Status s = nnserve::server::RunInspect(inspect_dir, inspect_version,
                                                 std::cout, inspect_precision);
    return s.ok() ? EXIT_SUCCESS : ReportError(s);
  }
  run.model_dir = run_dir;
  absl::Status s = nnserve::server::RunOffline(run, std::cin, std::cout);
  return s.ok() ? EXIT_SUCCESS : ReportError(s);
}
