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
#include <cstdio>
#include <cstdlib>
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
#include "grpcpp/resource_quota.h"
#include "prometheus/exposer.h"
#include "server/frontend/inference_service.h"
#include "server/frontend/oip_core.h"
#include "server/frontend/oip_service.h"
#include "server/frontend/repository_service.h"
#include "server/http/rest_server.h"
#include "server/lifecycle/message_limit.h"
#include "server/lifecycle/model_lifecycle.h"
#include "server/lifecycle/model_registry.h"
#include "server/lifecycle/repository_scan.h"
#include "server/observability/logging.h"
#include "server/observability/metrics.h"
#include "server/observability/process_metrics.h"
#include "server/scheduling/scheduler.h"
#include "server/signals.h"
#include "spdlog/spdlog.h"

namespace nnserve::server {
namespace {

constexpr char kServiceName[] = "nnserve.v1.Inference";
// The least time between health turning NOT_SERVING at shutdown and the
// process ending, for open health Watch streams to receive the update.
constexpr auto kWatchGrace = std::chrono::milliseconds(250);

absl::Status WritePortFile(const std::string& path, int grpc_port,
                           int metrics_port, int http_port) {
  const std::string temp = path + ".tmp";
  {
    std::ofstream file(temp, std::ios::trunc);
    file << grpc_port << " " << metrics_port << " " << http_port << "\n";
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

// --max-message-bytes, or when it is 0 the limit derived from the configs
// of every model in the repository now (whatever the control mode will
// load; see message_limit.h for models added later). Logged either way.
int64_t MessageLimit(const ServeOptions& o) {
  if (o.max_message_bytes > 0) {
    spdlog::info("event=message_limit bytes={} source=flag",
                 o.max_message_bytes);
    return o.max_message_bytes;
  }
  std::vector<v1::ModelConfig> configs;
  absl::StatusOr<std::vector<ScannedModel>> models =
      RepositoryScanner(o.model_repository).ScanAll();
  if (models.ok()) {
    for (ScannedModel& model : *models) {
      if (model.status.ok()) configs.push_back(std::move(model.config));
    }
  }
  const DerivedMessageLimit limit =
      DeriveMessageLimit(configs, o.max_batch_rows);
  spdlog::info(
      "event=message_limit bytes={} source=derived models={} model={} "
      "max_batch_rows={} request_bytes={} response_bytes={} "
      "hint={}",
      limit.bytes, configs.size(), LogQuote(limit.model), o.max_batch_rows,
      limit.sizes.request, limit.sizes.response,
      LogQuote("models added later do not raise it: set --max-message-bytes "
               "for them"));
  return limit.bytes;
}

// Flushes the logs and ends the process without running destructors or
// exit handlers (see the end of RunServe).
[[noreturn]] void ExitProcess(int code) {
  spdlog::default_logger()->flush();
  std::fflush(nullptr);
  _exit(code);
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
      "metrics_address={} http_address={} http_threads={} threads={} "
      "intra_op_threads={} max_batch_rows={} "
      "max_message_bytes={} max_queued_requests={} inline_work_limit={} "
      "dynamic_batching={} batching_max_batch_rows={} "
      "batching_max_queue_delay_us={} batching_max_queue_size={} "
      "drain_seconds={} shutdown_timeout_seconds={} allow_load_failures={} "
      "layer_timing={} "
      "model_control_mode={} repository_poll_seconds={} load_model={} "
      "model_load_threads={} port_file={} tls={} tls_cert_file={} "
      "tls_key_file={} tls_client_ca_file={} tls_reload_seconds={}",
      o.build_version, LogQuote(o.model_repository), o.grpc_address,
      o.metrics_address, LogQuote(o.http_address), o.http_threads, o.threads,
      o.intra_op_threads, o.max_batch_rows, o.max_message_bytes,
      o.max_queued_requests, o.inline_work_limit, o.dynamic_batching,
      o.batching_max_batch_rows, o.batching_max_queue_delay_us,
      o.batching_max_queue_size, o.drain_seconds, o.shutdown_timeout_seconds,
      o.allow_load_failures, o.layer_timing,
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

  const int64_t message_limit = MessageLimit(options);
  // --max-memory-bytes is split: half for gRPC's resource quota (which
  // gRPC 1.51 enforces after the fact, by refusing streams and closing
  // connections once over it: its buffers were measured at up to twice the
  // quota under a flood of 16 MiB requests), an eighth by default for the
  // tensors of queued calls; the rest is for the calls being decoded and
  // computed.
  const int64_t grpc_quota_bytes =
      std::max<int64_t>(options.max_memory_bytes / 2, 1);
  const int64_t max_queued_bytes = options.max_queued_bytes > 0
                                       ? options.max_queued_bytes
                                       : options.max_memory_bytes / 8;
  // REST bodies being read and decoded get an eighth as well (see
  // server/http/rest_server.h); their size limit is four times the message
  // limit, as JSON numbers take about four times the bytes of float32.
  const int64_t rest_budget_bytes =
      std::max<int64_t>(options.max_memory_bytes / 8, 1);
  const int64_t rest_body_bytes = 4 * message_limit;
  spdlog::info(
      "event=memory_limits max_memory_bytes={} grpc_quota_bytes={} "
      "max_queued_bytes={} max_concurrent_streams={} rest_budget_bytes={} "
      "rest_max_body_bytes={}",
      options.max_memory_bytes, grpc_quota_bytes, max_queued_bytes,
      options.max_concurrent_streams, rest_budget_bytes, rest_body_bytes);
  Scheduler scheduler(Scheduler::Options{
      .threads = options.threads,
      .intra_op_threads = options.intra_op_threads,
      .max_queued_calls = std::max<int64_t>(options.max_queued_requests, 1),
      .max_queued_bytes = max_queued_bytes,
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
                     .max_message_bytes = message_limit});
  ModelRepositoryService repository_service(&lifecycle, &metrics);
  // The Open Inference Protocol (KServe V2) on the same port and path.
  OipInferenceService oip_service(
      &registry, &scheduler,
      ServiceOptions{.max_batch_rows = options.max_batch_rows,
                     .max_message_bytes = message_limit},
      options.build_version);

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  int grpc_port = 0;
  builder.AddListeningPort(options.grpc_address, *credentials, &grpc_port);
  builder.RegisterService(&service);
  builder.RegisterService(&repository_service);
  builder.RegisterService(&oip_service);
  const int grpc_message_limit =
      static_cast<int>(std::clamp<int64_t>(message_limit, 1, INT_MAX));
  builder.SetMaxReceiveMessageSize(grpc_message_limit);
  builder.SetMaxSendMessageSize(grpc_message_limit);
  // The transport's memory (what it has read and not handed over yet, what
  // it sends); what queued calls hold is bounded by the scheduler's
  // max_queued_bytes (see event=memory_limits above).
  grpc::ResourceQuota quota("nnserve");
  quota.Resize(static_cast<size_t>(grpc_quota_bytes));
  builder.SetResourceQuota(quota);
  builder.AddChannelArgument(GRPC_ARG_MAX_CONCURRENT_STREAMS,
                             std::max(options.max_concurrent_streams, 1));
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || grpc_port == 0) {
    return Fail(absl::UnavailableError(
        absl::StrCat("cannot listen for gRPC on --grpc-address '",
                     options.grpc_address, "' (address in use or invalid)")));
  }
  grpc::HealthCheckServiceInterface* health = server->GetHealthCheckService();
  health->SetServingStatus(false);
  health->SetServingStatus(kServiceName, false);
  // The Open Inference Protocol's REST binding: the same core as the gRPC
  // service, on its own port; /v2/health/ready is 503 until the models are
  // loaded.
  OipCore rest_core(&registry, &scheduler,
                    ServiceOptions{.max_batch_rows = options.max_batch_rows,
                                   .max_message_bytes = message_limit},
                    options.build_version,
                    {std::begin(kRestExtensions), std::end(kRestExtensions)});
  std::unique_ptr<RestServer> rest;
  if (!options.http_address.empty()) {
    absl::StatusOr<std::unique_ptr<RestServer>> started = RestServer::Start(
        RestServer::Options{.address = options.http_address,
                            .threads = options.http_threads,
                            .max_body_bytes = rest_body_bytes,
                            .memory_budget_bytes = rest_budget_bytes,
                            .tls = options.tls},
        &rest_core, &registry, &lifecycle);
    if (!started.ok()) {
      server->Shutdown(std::chrono::system_clock::now());
      scheduler.Shutdown();
      return Fail(started.status());
    }
    rest = *std::move(started);
  }
  const int http_port = rest != nullptr ? rest->port() : 0;
  spdlog::info(
      "event=listening grpc_port={} metrics_port={} http_port={} "
      "health=NOT_SERVING",
      grpc_port, metrics_port, http_port);

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

  // Whether health ever said SERVING (a signal during the load skips it,
  // and with it the drain period: no balancer sent traffic here).
  bool served = false;
  if (signals.received() == 0) {
    served = true;
    health->SetServingStatus("", true);
    health->SetServingStatus(kServiceName, true);
    oip_service.SetReady(true);
    if (rest != nullptr) rest->SetReady(true);
    spdlog::info(
        "event=serving grpc_port={} metrics_port={} http_port={} "
        "load_duration_seconds={:.3f}",
        grpc_port, metrics_port, http_port, load_seconds);
    if (!options.port_file.empty()) {
      absl::Status written =
          WritePortFile(options.port_file, grpc_port, metrics_port, http_port);
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
  // Health goes NOT_SERVING at once: the cue for Kubernetes endpoints and
  // client-side balancers to move away. Calls are still served normally
  // for --drain-seconds while they do; then every service refuses new
  // calls with UNAVAILABLE (which clients retry elsewhere), and the calls
  // already accepted finish, up to --shutdown-timeout. Without a drain
  // period the services refuse first, so a caller that saw NOT_SERVING is
  // never served.
  const auto refuse_new_calls = [&] {
    service.BeginDrain();
    repository_service.BeginDrain();
    oip_service.BeginDrain();
    if (rest != nullptr) rest->BeginDrain();
  };
  const bool drain_period = served && options.drain_seconds > 0;
  if (!drain_period) refuse_new_calls();
  health->SetServingStatus(false);
  oip_service.SetReady(false);
  if (rest != nullptr) rest->SetReady(false);
  spdlog::info(
      "event=drain_started drain_seconds={} shutdown_timeout_seconds={} "
      "health=NOT_SERVING",
      drain_period ? options.drain_seconds : 0.0,
      options.shutdown_timeout_seconds);
  if (drain_period) {
    std::this_thread::sleep_for(
        std::chrono::duration<double>(options.drain_seconds));
    refuse_new_calls();
  }
  spdlog::info("event=shutdown_started timeout_seconds={}",
               options.shutdown_timeout_seconds);
  const auto deadline =
      std::chrono::system_clock::now() +
      std::chrono::duration_cast<std::chrono::milliseconds>(
          std::chrono::duration<double>(options.shutdown_timeout_seconds));
  const bool drained = service.WaitForIdle(deadline) &&
                       repository_service.WaitForIdle(deadline) &&
                       oip_service.WaitForIdle(deadline) &&
                       (rest == nullptr || rest->WaitForIdle(deadline));
  if (!drained) {
    spdlog::warn(
        "event=shutdown_timeout action=close_connections timeout_seconds={}",
        options.shutdown_timeout_seconds);
  }
  // Loads still queued are answered UNAVAILABLE; no more rescans.
  lifecycle.Stop();
  // After a drain nothing is queued, so this returns at once; after a
  // timeout the calls still queued are abandoned with the connections.
  if (drained) scheduler.Shutdown();
  StopExposer(std::move(exposer), options.metrics_address, metrics_port);
  // Health Watch streams got NOT_SERVING when the drain started; give the
  // update a moment to reach their clients.
  std::this_thread::sleep_until(shutdown_start + kWatchGrace);
  spdlog::info("event=shutdown_complete drained={} duration_seconds={:.3f}",
               drained,
               std::chrono::duration<double>(std::chrono::steady_clock::now() -
                                             shutdown_start)
                   .count());
  // The gRPC server is deliberately not shut down. gRPC 1.51's
  // Server::Shutdown fails every call that reaches it after shutdown began
  // but before its GOAWAY reached the client with CANCELLED (the core
  // "zombifies" such calls), a code clients do not retry; callers that
  // retry UNAVAILABLE during the drain hit that window every time. Every
  // call accepted has been answered, so the process ends here with its
  // connections open and the kernel closes them: a call still in transit
  // fails with UNAVAILABLE (connection closed), which clients retry
  // elsewhere. Ending the process also spares gRPC's threads from running
  // into objects this function would destroy.
  ExitProcess(EXIT_SUCCESS);
}

}  // namespace nnserve::server
