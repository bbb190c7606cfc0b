#include "client/client.h"

#include <condition_variable>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include <grpcpp/client_context.h>
#include <grpcpp/support/byte_buffer.h>

#include "client/status.h"

namespace nnserve {

void ConfigureContext(const CallOptions& options,
                      grpc::ClientContext* context) {
  if (options.timeout.count() > 0) {
    context->set_deadline(std::chrono::system_clock::now() + options.timeout);
  }
  context->set_wait_for_ready(options.wait_for_ready);
}

Client::Client(std::shared_ptr<grpc::Channel> channel)
    : channel_(std::move(channel)),
      stub_(v1::Inference::NewStub(channel_)),
      repository_stub_(v1::ModelRepository::NewStub(channel_)),
      generic_stub_(std::make_unique<grpc::GenericStub>(channel_)) {}

absl::StatusOr<v1::PredictResponse> Client::Predict(
    const v1::PredictRequest& request, const CallOptions& options) const {
  grpc::ClientContext context;
  ConfigureContext(options, &context);
  v1::PredictResponse response;
  const grpc::Status status = stub_->Predict(&context, request, &response);
  if (!status.ok()) return client::FromGrpcStatus(status);
  return response;
}

absl::StatusOr<v1::ModelInfoResponse> Client::ModelInfo(
    std::string_view model, int64_t version, const CallOptions& options) const {
  grpc::ClientContext context;
  ConfigureContext(options, &context);
  v1::ModelInfoRequest request;
  request.set_model(std::string(model));
  request.set_version(version);
  v1::ModelInfoResponse response;
  const grpc::Status status = stub_->ModelInfo(&context, request, &response);
  if (!status.ok()) return client::FromGrpcStatus(status);
  return response;
}

absl::StatusOr<v1::ListModelsResponse> Client::ListModels(
    const CallOptions& options) const {
  grpc::ClientContext context;
  ConfigureContext(options, &context);
  v1::ListModelsResponse response;
  const grpc::Status status =
      stub_->ListModels(&context, v1::ListModelsRequest(), &response);
  if (!status.ok()) return client::FromGrpcStatus(status);
  return response;
}

absl::StatusOr<v1::LoadModelResponse> Client::LoadModel(
    std::string_view model, const CallOptions& options) const {
  grpc::ClientContext context;
  ConfigureContext(options, &context);
  v1::LoadModelRequest request;
  request.set_model(std::string(model));
  v1::LoadModelResponse response;
  const grpc::Status status =
      repository_stub_->LoadModel(&context, request, &response);
  if (!status.ok()) return client::FromGrpcStatus(status);
  return response;
}

absl::StatusOr<v1::UnloadModelResponse> Client::UnloadModel(
    std::string_view model, const CallOptions& options) const {
  grpc::ClientContext context;
  ConfigureContext(options, &context);
  v1::UnloadModelRequest request;
  request.set_model(std::string(model));
  v1::UnloadModelResponse response;
  const grpc::Status status =
      repository_stub_->UnloadModel(&context, request, &response);
  if (!status.ok()) return client::FromGrpcStatus(status);
  return response;
}

absl::StatusOr<ServingStatus> Client::Health(std::string_view service,
                                             const CallOptions& options) const {
  grpc::ClientContext context;
  ConfigureContext(options, &context);
  const std::string encoded = EncodeHealthCheckRequest(service);
  grpc::Slice slice(encoded);
  const grpc::ByteBuffer request(&slice, 1);
  grpc::ByteBuffer response;

  std::mutex mutex;
  std::condition_variable done_cv;
  bool done = false;
  grpc::Status status;
  generic_stub_->UnaryCall(&context, std::string(kHealthCheckMethod),
                           grpc::StubOptions(), &request, &response,
                           [&](grpc::Status s) {
                             std::lock_guard<std::mutex> lock(mutex);
                             status = std::move(s);
                             done = true;
                             done_cv.notify_one();
                           });
  {
    std::unique_lock<std::mutex> lock(mutex);
    done_cv.wait(lock, [&] { return done; });
  }
  if (!status.ok()) return client::FromGrpcStatus(status);

  std::vector<grpc::Slice> slices;
  if (!response.Dump(&slices).ok()) {
    return absl::DataLossError("HealthCheckResponse: unreadable byte buffer");
  }
  std::string bytes;
  for (const grpc::Slice& s : slices) {
    bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
  }
  return DecodeHealthCheckResponse(bytes);
}

}  // namespace nnserve
