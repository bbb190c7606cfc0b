// nnserve::Client: the C++ client of the nnserve.v1.Inference service
// (Predict, ModelInfo, ListModels), the nnserve.v1.ModelRepository service
// (LoadModel, UnloadModel) and grpc.health.v1.Health/Check.
// The Client shares ownership of the channel it is built from and owns its
// stubs. Thread-safe: every method is const and may be called concurrently
// from many threads on one Client (gRPC channels and stubs are thread-safe).
// Errors are absl::Status with the server's gRPC code and message
// (conversion in client/status.h).
#ifndef NNSERVE_CLIENT_CLIENT_H_
#define NNSERVE_CLIENT_CLIENT_H_

#include <chrono>
#include <cstdint>
#include <memory>
#include <string_view>

#include <grpcpp/channel.h>
#include <grpcpp/generic/generic_stub.h>

#include "absl/status/statusor.h"
#include "client/health_codec.h"
#include "nnserve/v1/inference.grpc.pb.h"
#include "nnserve/v1/model_repository.grpc.pb.h"

namespace nnserve {

// Per-call options.
struct CallOptions {
  // Deadline relative to the start of the call; zero or negative = none.
  std::chrono::microseconds timeout = std::chrono::seconds(10);
  // Block until the channel is connected instead of failing fast with
  // UNAVAILABLE while it is (re)connecting (gRPC "wait for ready").
  bool wait_for_ready = false;
};

class Client {
 public:
  explicit Client(std::shared_ptr<grpc::Channel> channel);

  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // Runs a forward pass (see MakePredictRequest in client/rows.h).
  absl::StatusOr<v1::PredictResponse> Predict(
      const v1::PredictRequest& request, const CallOptions& options = {}) const;

  // Describes `model` at `version` (0 = newest loaded).
  absl::StatusOr<v1::ModelInfoResponse> ModelInfo(
      std::string_view model, int64_t version = 0,
      const CallOptions& options = {}) const;

  // Every model in the server's repository with its versions and states.
  absl::StatusOr<v1::ListModelsResponse> ListModels(
      const CallOptions& options = {}) const;

  // (Re)loads `model` from the server's repository and returns once its
  // versions serve. Needs a server in --model-control-mode explicit (else
  // FAILED_PRECONDITION); NOT_FOUND for a model the repository lacks; a
  // version that fails validation is INVALID_ARGUMENT or
  // FAILED_PRECONDITION with the validation message. Loading a large model
  // can take longer than the default deadline: raise options.timeout.
  absl::StatusOr<v1::LoadModelResponse> LoadModel(
      std::string_view model, const CallOptions& options = {}) const;

  // Stops serving every version of `model` (explicit mode only, as
  // LoadModel); NOT_FOUND if the server neither serves nor has it.
  absl::StatusOr<v1::UnloadModelResponse> UnloadModel(
      std::string_view model, const CallOptions& options = {}) const;

  // grpc.health.v1.Health/Check for `service` ("" = the whole server,
  // "nnserve.v1.Inference" = the inference service). A service the server
  // does not know is the error NOT_FOUND (as the health service reports it).
  absl::StatusOr<ServingStatus> Health(std::string_view service = "",
                                       const CallOptions& options = {}) const;

  const std::shared_ptr<grpc::Channel>& channel() const { return channel_; }
  // The generated stub, for asynchronous callers (e.g. the load generator).
  v1::Inference::Stub& stub() const { return *stub_; }

 private:
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::Inference::Stub> stub_;
  std::unique_ptr<v1::ModelRepository::Stub> repository_stub_;
  std::unique_ptr<grpc::GenericStub> generic_stub_;
};

// Applies `options` (deadline, wait-for-ready) to a fresh ClientContext.
void ConfigureContext(const CallOptions& options, grpc::ClientContext* context);

}  // namespace nnserve

#endif  // NNSERVE_CLIENT_CLIENT_H_
