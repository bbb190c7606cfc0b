#include "server/frontend/oip_service.h"

#include <chrono>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/exceptions.h"
#include "common/str_util.h"
#include "server/frontend/status.h"

namespace nnserve::server {

namespace {

using Clock = std::chrono::steady_clock;

double SecondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// Finishes ModelInfer: converts the status once, records the request
// metrics, hands the status to gRPC.
void FinishInfer(grpc::ServerUnaryReactor* reactor, RequestMetrics* metrics,
                 Clock::time_point start, const absl::Status& status) {
  grpc::Status grpc_status = ToGrpcStatus(status);
  metrics->Record(Method::kModelInfer, grpc_status.error_code(),
                  SecondsSince(start));
  reactor->Finish(grpc_status);
}

}  // namespace

OipInferenceService::OipInferenceService(const ModelRegistry* registry,
                                         Scheduler* scheduler,
                                         const ServiceOptions& options,
                                         std::string server_version)
    : registry_(registry),
      // The standard gRPC service has no RPCs of other extensions.
      core_(registry, scheduler, options, std::move(server_version),
            {"classification"}) {}

absl::Status OipInferenceService::Admit(
    const grpc::CallbackServerContext* context, std::string_view method) const {
  if (calls_.draining()) return CallTracker::DrainingError();
  if (context->deadline() <= std::chrono::system_clock::now()) {
    return absl::DeadlineExceededError(absl::StrCat(
        "the call's deadline passed before ", Sv(method), " could run"));
  }
  return absl::OkStatus();
}

grpc::ServerUnaryReactor* OipInferenceService::ServerLive(
    grpc::CallbackServerContext* /*context*/,
    const inference::ServerLiveRequest* /*request*/,
    inference::ServerLiveResponse* response) {
  grpc::ServerUnaryReactor* reactor = new TrackedReactor(&calls_);
  response->set_live(true);
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

grpc::ServerUnaryReactor* OipInferenceService::ServerReady(
    grpc::CallbackServerContext* /*context*/,
    const inference::ServerReadyRequest* /*request*/,
    inference::ServerReadyResponse* response) {
  grpc::ServerUnaryReactor* reactor = new TrackedReactor(&calls_);
  response->set_ready(ready_.load(std::memory_order_relaxed) &&
                      !calls_.draining());
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

grpc::ServerUnaryReactor* OipInferenceService::ModelReady(
    grpc::CallbackServerContext* context,
    const inference::ModelReadyRequest* request,
    inference::ModelReadyResponse* response) {
  grpc::ServerUnaryReactor* reactor = new TrackedReactor(&calls_);
  const absl::Status status = StatusOfCall("handling ModelReady", [&] {
    absl::Status admitted = Admit(context, "ModelReady");
    if (!admitted.ok()) return admitted;
    absl::StatusOr<bool> ready =
        core_.ModelReady(request->name(), request->version());
    if (!ready.ok()) return ready.status();
    response->set_ready(*ready);
    return absl::OkStatus();
  });
  reactor->Finish(ToGrpcStatus(status));
  return reactor;
}

grpc::ServerUnaryReactor* OipInferenceService::ServerMetadata(
    grpc::CallbackServerContext* context,
    const inference::ServerMetadataRequest* /*request*/,
    inference::ServerMetadataResponse* response) {
  grpc::ServerUnaryReactor* reactor = new TrackedReactor(&calls_);
  const absl::Status status = StatusOfCall("handling ServerMetadata", [&] {
    absl::Status admitted = Admit(context, "ServerMetadata");
    if (!admitted.ok()) return admitted;
    core_.ServerMetadata(response);
    return absl::OkStatus();
  });
  reactor->Finish(ToGrpcStatus(status));
  return reactor;
}

grpc::ServerUnaryReactor* OipInferenceService::ModelMetadata(
    grpc::CallbackServerContext* context,
    const inference::ModelMetadataRequest* request,
    inference::ModelMetadataResponse* response) {
  grpc::ServerUnaryReactor* reactor = new TrackedReactor(&calls_);
  const absl::Status status = StatusOfCall("handling ModelMetadata", [&] {
    absl::Status admitted = Admit(context, "ModelMetadata");
    if (!admitted.ok()) return admitted;
    return core_.ModelMetadata(request->name(), request->version(), response);
  });
  reactor->Finish(ToGrpcStatus(status));
  return reactor;
}

grpc::ServerUnaryReactor* OipInferenceService::ModelInfer(
    grpc::CallbackServerContext* context,
    const inference::ModelInferRequest* request,
    inference::ModelInferResponse* response) {
  const Clock::time_point start = Clock::now();
  grpc::ServerUnaryReactor* reactor = new TrackedReactor(&calls_);
  RequestMetrics* metrics = registry_->RequestMetricsFor(request->model_name());
  // OK once the call is handed to the scheduler (its `done` finishes it);
  // otherwise the call is finished here, also when something threw.
  const absl::Status refused = StatusOfCall("handling ModelInfer", [&] {
    absl::Status admitted = Admit(context, "ModelInfer");
    if (!admitted.ok()) return admitted;
    return core_.StartInfer(
        *request, response,
        OipCall{.deadline = context->deadline(),
                .is_cancelled = [context] { return context->IsCancelled(); },
                .done =
                    [reactor, metrics, start](absl::Status status) {
                      FinishInfer(reactor, metrics, start, status);
                    }});
  });
  if (!refused.ok()) FinishInfer(reactor, metrics, start, refused);
  return reactor;
}

}  // namespace nnserve::server
