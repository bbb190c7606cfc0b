#include "server/frontend/repository_service.h"

#include <chrono>
#include <string>
#include <string_view>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/exceptions.h"
#include "common/str_util.h"
#include "engine/model_spec.h"
#include "server/frontend/status.h"

namespace nnserve::server {

namespace {

using Clock = std::chrono::steady_clock;

// Whether an answer of the lifecycle shows that `model` is a directory of
// the repository (so its name may label metric series): a success, or a
// version that failed validation. NOT_FOUND, the mode refusal and
// shutdown errors say nothing about the name.
bool ShowsModelInRepository(const absl::Status& status, ModelControlMode mode) {
  if (status.ok()) return true;
  if (mode != ModelControlMode::kExplicit) return false;
  return status.code() == absl::StatusCode::kInvalidArgument ||
         status.code() == absl::StatusCode::kFailedPrecondition;
}

// Why a call is refused before it reaches the lifecycle, or OK: the server
// is draining, the deadline already passed, or (in explicit mode, where the
// name would be looked up in the repository) the name is not a model name.
// Outside explicit mode the lifecycle answers FAILED_PRECONDITION whatever
// the name.
absl::Status Admit(const grpc::CallbackServerContext& context, bool draining,
                   ModelControlMode mode, std::string_view method,
                   std::string_view model) {
  if (draining) return CallTracker::DrainingError();
  if (context.deadline() <= std::chrono::system_clock::now()) {
    return absl::DeadlineExceededError(absl::StrCat(
        "the call's deadline passed before ", Sv(method), " could run"));
  }
  if (mode != ModelControlMode::kExplicit) return absl::OkStatus();
  if (model.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(Sv(method),
                     ": the request names no model; expected the name of a "
                     "model directory in the repository"));
  }
  if (!engine::IsValidModelName(model)) {
    return absl::InvalidArgumentError(
        absl::StrCat(Sv(method), ": '", Clip(model),
                     "' is not a valid model name, expected "
                     "[A-Za-z0-9][A-Za-z0-9_.-]{0,63}"));
  }
  return absl::OkStatus();
}

}  // namespace

// A unary reactor that finishes its call once, records the call's request
// metrics and reports its completion to the service.
class ModelRepositoryService::CallReactor : public TrackedReactor {
 public:
  CallReactor(ModelRepositoryService* service, Method method, std::string model)
      : TrackedReactor(&service->calls_),
        service_(service),
        method_(method),
        model_(std::move(model)),
        start_(Clock::now()) {}

  const std::string& model() const { return model_; }

  // Answers the call with `status`, counting it under the model's name when
  // `model_in_repository`, else under "_unknown".
  void Complete(const absl::Status& status, bool model_in_repository) {
    const grpc::Status grpc_status = ToGrpcStatus(status);
    RequestMetrics* metrics = model_in_repository
                                  ? service_->metrics_->ForModel(model_)
                                  : service_->metrics_->ForUnknownModel();
    metrics->Record(
        method_, grpc_status.error_code(),
        std::chrono::duration<double>(Clock::now() - start_).count());
    Finish(grpc_status);
  }

 private:
  ModelRepositoryService* const service_;
  const Method method_;
  const std::string model_;
  const Clock::time_point start_;
};

ModelRepositoryService::ModelRepositoryService(ModelLifecycle* lifecycle,
                                               ServerMetrics* metrics)
    : lifecycle_(lifecycle), metrics_(metrics) {}

grpc::ServerUnaryReactor* ModelRepositoryService::Start(
    Method method, grpc::CallbackServerContext* context, std::string model,
    std::string* response_model,
    void (ModelLifecycle::*operation)(
        std::string, absl::AnyInvocable<void(absl::Status) &&>)) {
  auto* reactor = new CallReactor(this, method, model);
  const ModelControlMode mode = lifecycle_->mode();
  // OK once the lifecycle has the request (its callback finishes the
  // call); otherwise the call is finished here, also when something threw.
  const absl::Status refused = StatusOfCall(
      absl::StrCat("handling ", Sv(MethodName(method))), [&]() -> absl::Status {
        absl::Status admitted =
            Admit(*context, calls_.draining(), mode, MethodName(method), model);
        if (!admitted.ok()) return admitted;
        (lifecycle_->*operation)(std::move(model), [reactor, response_model,
                                                    mode](absl::Status status) {
          if (status.ok()) *response_model = reactor->model();
          reactor->Complete(status, ShowsModelInRepository(status, mode));
        });
        return absl::OkStatus();
      });
  if (!refused.ok()) reactor->Complete(refused, /*model_in_repository=*/false);
  return reactor;
}

grpc::ServerUnaryReactor* ModelRepositoryService::LoadModel(
    grpc::CallbackServerContext* context, const v1::LoadModelRequest* request,
    v1::LoadModelResponse* response) {
  return Start(Method::kLoadModel, context, request->model(),
               response->mutable_model(), &ModelLifecycle::LoadModel);
}

grpc::ServerUnaryReactor* ModelRepositoryService::UnloadModel(
    grpc::CallbackServerContext* context, const v1::UnloadModelRequest* request,
    v1::UnloadModelResponse* response) {
  return Start(Method::kUnloadModel, context, request->model(),
               response->mutable_model(), &ModelLifecycle::UnloadModel);
}

}  // namespace nnserve::server
