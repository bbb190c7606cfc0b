#include "server/serve_command.h"

#include <arpa/inet.h>
#include <malloc.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <climits>
#include <filesystem>
#include <fstream>
#include <memory>
#include <numeric>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/grpcpp.h"
#include "grpcpp/health_check_service_interface.h"
#include "prometheus/exposer.h"
#include "server/frontend/inference_service.h"
#include "server/frontend/repository_service.h"
#include "server/lifecycle/model_lifecycle.h"
#include "server/lifecycle/model_registry.h"
#include "server/observability/logging.h"
#include "server/observability/metrics.h"
#include "server/observability/process_metrics.h"
#include "server/scheduling/scheduler.h"
#include "server/signals.h"
#include "spdlog/spdlog.h"

namespace nnserve::server {
namespace {

constexpr char kServiceName[] = "nnserve.v1.Inference";
// How long open health Watch streams get at shutdown to receive NOT_SERVING.
constexpr auto kWatchGrace = std::chrono::milliseconds(250);

absl::Status WritePortFile(const std::string& path, int grpc_port,
                           int metrics_port) {
  const std::string temp = path + ".tmp";
  {
    std::ofstream file(temp, std::ios::trunc);
    file << grpc_port << " " << metrics_port << "\n";
    if (!file) {
      return absl::PermissionDeniedError(
          absl::StrCat("cannot write port file '", temp, "'"));
    }
  }
  std::error_code error;
  std::filesystem::rename(temp, path, error);
  if (error) {
    return absl::PermissionDeniedError(absl::StrCat(
        "cannot rename '", temp, "' to '", path, "': ", error.message()));
  }
  return absl::OkStatus();
}

// Connects to and disconnects from the metrics port once, which wakes
// civetweb's accept loop (it polls with a 2 s timeout) so that a pending
// mg_stop returns at once. Wildcard hosts are reached via 127.0.0.1; only
// IPv4 literals are poked (others just take the slow path).
void PokeMetricsPort(const std::string& metrics_address, int port) {
  std::string host = metrics_address.substr(0, metrics_address.rfind(':'));
  if (host.empty() || host == "0.0.0.0" || host == "localhost") {
    host = "127.0.0.1";
  }
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(port));
  if (inet_pton(AF_INET, host.c_str(), &address.sin_addr) != 1) return;
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return;
  connect(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address);
  close(fd);
}

// Stops the metrics endpoint on a helper thread while the caller keeps
// waking civetweb's accept loop; returns once the Exposer is destroyed.
void StopExposer(std::unique_ptr<prometheus::Exposer> exposer,
                 const std::string& metrics_address, int port) {
  std::atomic<bool> stopped{false};
  std::thread stopper([&] {
    exposer.reset();
    stopped.store(true);
  });
  while (!stopped.load()) {
    PokeMetricsPort(metrics_address, port);
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  stopper.join();
}

// Every batch size up to 64 rows (the default merge limit) gets its oneDNN
// plan at load, so no request pays for building one; larger sizes are built
// on first use (at most 15 more plans per model).
std::vector<int64_t> PrewarmBatchSizes() {
  std::vector<int64_t> sizes(64);
  std::iota(sizes.begin(), sizes.end(), 1);
  return sizes;
}

absl::Status Fail(absl::Status status) {
  spdlog::error("event=startup_failed error={}", LogQuote(status.message()));
  return status;
}

void LogSettings(const ServeOptions& o) {
  const absl::StatusOr<TlsMode> mode = TlsModeOf(o.tls);
  const std::string tls_mode =
      mode.ok() ? std::string(TlsModeName(*mode)) : "invalid";
  spdlog::info(
      "event=starting version={} model_repository={} grpc_address={} "
      "metrics_address={} threads={} intra_op_threads={} max_batch_rows={} "
      "max_message_bytes={} max_queued_requests={} inline_work_limit={} "
      "dynamic_batching={} batching_max_batch_rows={} "
      "batching_max_queue_delay_us={} batching_max_queue_size={} "
      "shutdown_timeout_seconds={} allow_load_failures={} layer_timing={} "
      "model_control_mode={} repository_poll_seconds={} load_model={} "
      "model_load_threads={} port_file={} tls={} tls_cert_file={} "
      "tls_key_file={} tls_client_ca_file={} tls_reload_seconds={}",
      o.build_version, LogQuote(o.model_repository), o.grpc_address,
      o.metrics_address, o.threads, o.intra_op_threads, o.max_batch_rows,
      o.max_message_bytes, o.max_queued_requests, o.inline_work_limit,
      o.dynamic_batching, o.batching_max_batch_rows,
      o.batching_max_queue_delay_us, o.batching_max_queue_size,
      o.shutdown_timeout_seconds, o.allow_load_failures, o.layer_timing,
      ModelControlModeName(o.model_control_mode), o.repository_poll_seconds,
      LogQuote(absl::StrJoin(o.load_models, ",")), o.model_load_threads,
      LogQuote(o.port_file), tls_mode, LogQuote(o.tls.cert_file),
      LogQuote(o.tls.key_file), LogQuote(o.tls.client_ca_file),
      o.tls.reload_seconds);
}

}  // namespace

absl::Status RunServe(const ServeOptions& options) {
  SignalWaiter signals;
  LogSettings(options);
  // TLS files are checked before anything listens.
  absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> credentials =
      MakeServerCredentials(options.tls);
  if (!credentials.ok()) return Fail(credentials.status());
  // Model weights and their oneDNN copies are large blocks that come and go
  // with every reload. glibc raises its mmap threshold each time such a
  // block is freed, after which those blocks live in the heap and their
  // memory is kept after an unload (measured: RSS +22 MB over 12 reloads of
  // a 7 MB model). A fixed threshold keeps every block of 1 MiB or more in
  // its own mapping, returned to the OS the moment its version is freed.
  mallopt(M_MMAP_THRESHOLD, 1 << 20);

  // Metrics first, so load progress (nnserve_model_loaded) is observable.
  ServerMetrics metrics(options.build_version);
  auto process = std::make_shared<ProcessCollector>();
  std::unique_ptr<prometheus::Exposer> exposer;
  try {
    exposer = std::make_unique<prometheus::Exposer>(options.metrics_address);
  } catch (const std::exception& e) {
    return Fail(absl::UnavailableError(
        absl::StrCat("cannot serve metrics on --metrics-address '",
                     options.metrics_address, "': ", e.what())));
  }
  exposer->RegisterCollectable(metrics.registry());
  exposer->RegisterCollectable(process);
  const std::vector<int> metrics_ports = exposer->GetListeningPorts();
  const int metrics_port = metrics_ports.empty() ? 0 : metrics_ports.front();
  // On every exit path, stop the endpoint quickly (see StopExposer).
  struct MetricsEndpointStopper {
    std::unique_ptr<prometheus::Exposer>& exposer;
    const std::string& address;
    int port;
    ~MetricsEndpointStopper() {
      if (exposer) StopExposer(std::move(exposer), address, port);
    }
  } metrics_stopper{exposer, options.metrics_address, metrics_port};

  Scheduler scheduler(Scheduler::Options{
      .threads = options.threads,
      .intra_op_threads = options.intra_op_threads,
      .max_queued_calls = std::max<int64_t>(options.max_queued_requests, 1),
      .inline_work_limit = options.inline_work_limit,
      .time_layers = options.layer_timing});
  ModelRegistry registry(&metrics);
  if (options.model_control_mode != ModelControlMode::kExplicit &&
      !options.load_models.empty()) {
    spdlog::warn("event=option_ignored option=--load-model reason={}",
                 LogQuote("only used with --model-control-mode=explicit"));
  }
  ModelLifecycle lifecycle(
      ModelLifecycle::Options{
          .repository = options.model_repository,
          .mode = options.model_control_mode,
          .poll_seconds = options.repository_poll_seconds,
          .startup_models = options.load_models,
          .load_threads = options.model_load_threads,
          .allow_load_failures = options.allow_load_failures,
          .engine =
              engine::EngineOptions{
                  .intra_op_threads = options.intra_op_threads,
                  .prewarm_batch_sizes = PrewarmBatchSizes()},
          .batching_defaults =
              BatchingOptions{
                  .merge = options.dynamic_batching,
                  .max_batch_rows = options.batching_max_batch_rows,
                  .max_queue_delay_us = options.batching_max_queue_delay_us,
                  .max_queue_size = options.batching_max_queue_size}},
      &registry, &scheduler, &metrics);
  // SIGHUP rescans the repository while the lifecycle exists.
  signals.OnHangup([&lifecycle] { lifecycle.Rescan(); });
  struct HangupUnbinder {
    SignalWaiter& signals;
    ~HangupUnbinder() { signals.OnHangup(nullptr); }
  } hangup_unbinder{signals};

  InferenceService service(
      &registry, &scheduler, &metrics,
      ServiceOptions{.max_batch_rows = options.max_batch_rows,
                     .max_message_bytes = options.max_message_bytes});
  ModelRepositoryService repository_service(&lifecycle, &metrics);

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  int grpc_port = 0;
  builder.AddListeningPort(options.grpc_address, *credentials, &grpc_port);
  builder.RegisterService(&service);
  builder.RegisterService(&repository_service);
  const int message_limit = static_cast<int>(
      std::clamp<int64_t>(options.max_message_bytes, 1, INT_MAX));
  builder.SetMaxReceiveMessageSize(message_limit);
  builder.SetMaxSendMessageSize(message_limit);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || grpc_port == 0) {
    return Fail(absl::UnavailableError(
        absl::StrCat("cannot listen for gRPC on --grpc-address '",
                     options.grpc_address, "' (address in use or invalid)")));
  }
  grpc::HealthCheckServiceInterface* health = server->GetHealthCheckService();
  health->SetServingStatus(false);
  health->SetServingStatus(kServiceName, false);
  spdlog::info(
      "event=listening grpc_port={} metrics_port={} health=NOT_SERVING",
      grpc_port, metrics_port);

  const auto load_start = std::chrono::steady_clock::now();
  absl::Status loaded = lifecycle.Start();
  if (!loaded.ok()) {
    server->Shutdown(std::chrono::system_clock::now());
    lifecycle.Stop();
    scheduler.Shutdown();
    return Fail(loaded);
  }
  const double load_seconds = std::chrono::duration<double>(
                                  std::chrono::steady_clock::now() - load_start)
                                  .count();

  if (signals.received() == 0) {
    health->SetServingStatus("", true);
    health->SetServingStatus(kServiceName, true);
    spdlog::info(
        "event=serving grpc_port={} metrics_port={} "
        "load_duration_seconds={:.3f}",
        grpc_port, metrics_port, load_seconds);
    if (!options.port_file.empty()) {
      absl::Status written =
          WritePortFile(options.port_file, grpc_port, metrics_port);
      if (!written.ok()) {
        server->Shutdown(std::chrono::system_clock::now());
        lifecycle.Stop();
        scheduler.Shutdown();
        return Fail(written);
      }
    }
    signals.Wait();
  }

  const auto shutdown_start = std::chrono::steady_clock::now();
  spdlog::info("event=shutdown_started timeout_seconds={}",
               options.shutdown_timeout_seconds);
  // Let both services' calls finish (new ones get UNAVAILABLE), then shut
  // the server down at once: anything still open is a health Watch stream
  // or a call past the timeout (see frontend/call_tracker.h). Draining
  // starts before health reports NOT_SERVING, so a client that saw
  // NOT_SERVING is never served.
  const auto deadline =
      std::chrono::system_clock::now() +
      std::chrono::duration_cast<std::chrono::milliseconds>(
          std::chrono::duration<double>(options.shutdown_timeout_seconds));
  service.BeginDrain();
  repository_service.BeginDrain();
  health->SetServingStatus(false);
  const bool drained =
      service.WaitForIdle(deadline) && repository_service.WaitForIdle(deadline);
  if (!drained) {
    spdlog::warn(
        "event=shutdown_timeout action=cancel_in_flight timeout_seconds={}",
        options.shutdown_timeout_seconds);
  }
  // Anything still open now is a health Watch stream: give it a moment to
  // deliver NOT_SERVING to its client before the streams are cancelled
  // (Shutdown returns at once when nothing is open).
  // Loads still queued are answered UNAVAILABLE; no more rescans.
  lifecycle.Stop();
  server->Shutdown(std::chrono::system_clock::now() + kWatchGrace);
  server->Wait();
  scheduler.Shutdown();
  StopExposer(std::move(exposer), options.metrics_address, metrics_port);
  spdlog::info("event=shutdown_complete duration_seconds={:.3f}",
               std::chrono::duration<double>(std::chrono::steady_clock::now() -
                                             shutdown_start)
                   .count());
  return absl::OkStatus();
}

}  // namespace nnserve::server
