// Shared helpers for the in-process frontend tests
// (inference_service_test.cc, repository_service_test.cc): building a
// random [rows, cols] input tensor in either encoding, reading a tensor's
// floats back, reading nnserve_requests_total, starting a loopback gRPC
// server for a service under test, and the serving core under it
// (ServingStack).
//
// Header-only, like integration_fixture.h (which serves the tests that run
// the real binary). Nothing here keeps state; each function works on what
// the calling test owns.
#ifndef NNSERVE_TESTS_SERVER_SERVICE_TEST_UTIL_H_
#define NNSERVE_TESTS_SERVER_SERVICE_TEST_UTIL_H_

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "engine/model.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "nnserve/v1/inference.pb.h"
#include "server/lifecycle/model_lifecycle.h"
#include "server/lifecycle/model_registry.h"
#include "server/observability/metrics.h"
#include "server/scheduling/scheduler.h"
#include "tests/util/model_builder.h"

namespace nnserve::testing {

// Fills `tensor` with shape [rows, cols] and random values in [-2, 2]
// (RandomValues with `seed`), as raw bytes when `raw`, else as values.
inline void FillRandomInput(v1::Tensor* tensor, int64_t rows, int64_t cols,
                            bool raw, uint32_t seed) {
  const std::vector<float> x =
      RandomValues(static_cast<size_t>(rows * cols), 2.0f, seed);
  tensor->add_shape(rows);
  tensor->add_shape(cols);
  if (raw) {
    tensor->set_raw(x.data(), x.size() * sizeof(float));
  } else {
    tensor->mutable_values()->Add(x.begin(), x.end());
  }
}

// The floats of `tensor`, from its raw bytes when it has any, else from its
// values.
inline std::vector<float> TensorFloats(const v1::Tensor& tensor) {
  if (!tensor.raw().empty()) {
    std::vector<float> v(tensor.raw().size() / sizeof(float));
    std::memcpy(v.data(), tensor.raw().data(), v.size() * sizeof(float));
    return v;
  }
  return {tensor.values().begin(), tensor.values().end()};
}

// Starts a gRPC server on 127.0.0.1 (port chosen by the OS) serving
// `service` into `*server` and returns a channel to it. Fails the test
// (fatally: wrap the call in ASSERT_NO_FATAL_FAILURE) if it cannot listen.
inline void StartLoopbackServer(grpc::Service* service,
                                std::unique_ptr<grpc::Server>* server,
                                std::shared_ptr<grpc::Channel>* channel) {
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(),
                           &port);
  builder.RegisterService(service);
  *server = builder.BuildAndStart();
  ASSERT_NE(*server, nullptr);
  ASSERT_NE(port, 0);
  *channel = grpc::CreateChannel("127.0.0.1:" + std::to_string(port),
                                 grpc::InsecureChannelCredentials());
}

// nnserve_requests_total{model, method, code} in `metrics` (0 if absent).
inline double RequestCount(const server::ServerMetrics& metrics,
                           const std::string& model, const std::string& method,
                           const std::string& code) {
  for (const auto& family : metrics.registry()->Collect()) {
    if (family.name != "nnserve_requests_total") continue;
    for (const auto& metric : family.metric) {
      std::map<std::string, std::string> labels;
      for (const auto& l : metric.label) labels[l.name] = l.value;
      if (labels["model"] == model && labels["method"] == method &&
          labels["code"] == code) {
        return metric.counter.value;
      }
    }
  }
  return 0;
}

// The serving core a frontend service runs on, for in-process tests:
// Scheduler → ModelRegistry → ModelLifecycle over `repository` (loaded by
// Start), and a loopback gRPC server for the service under test (Serve).
// Stop, also run by the destructor, shuts the server down before the
// lifecycle and the scheduler, and only then frees the service. The
// metrics must outlive the stack. Not thread-safe: one test thread.
class ServingStack {
 public:
  ServingStack(std::filesystem::path repository, server::ServerMetrics* metrics)
      : repository_(std::move(repository)), metrics_(metrics) {}
  ServingStack(const ServingStack&) = delete;
  ServingStack& operator=(const ServingStack&) = delete;
  ~ServingStack() { Stop(); }

  // (Re)starts the scheduler with `scheduling` and loads the repository.
  // Fails the test (fatally: wrap in ASSERT_NO_FATAL_FAILURE) on errors.
  void Start(server::Scheduler::Options scheduling = {.threads = 2}) {
    Stop();
    scheduler_ = std::make_unique<server::Scheduler>(scheduling);
    registry_ = std::make_unique<server::ModelRegistry>(metrics_);
    server::ModelLifecycle::Options options;
    options.repository = repository_;
    lifecycle_ = std::make_unique<server::ModelLifecycle>(
        options, registry_.get(), scheduler_.get(), metrics_);
    const absl::Status started = lifecycle_->Start();
    ASSERT_TRUE(started.ok()) << started;
  }

  // Serves `service` (kept until Stop) on a loopback port; returns a
  // channel to it (null if the server could not start: the test failed).
  template <typename Service>
  std::shared_ptr<grpc::Channel> Serve(std::unique_ptr<Service> service) {
    service_ = std::move(service);
    std::shared_ptr<grpc::Channel> channel;
    StartLoopbackServer(service_.get(), &server_, &channel);
    return channel;
  }

  void Stop() {
    if (server_) server_->Shutdown();
    server_.reset();
    if (lifecycle_) lifecycle_->Stop();
    if (scheduler_) scheduler_->Shutdown();
    service_.reset();
    lifecycle_.reset();
    registry_.reset();
    scheduler_.reset();
  }

  server::Scheduler* scheduler() const { return scheduler_.get(); }
  server::ModelRegistry* registry() const { return registry_.get(); }

 private:
  const std::filesystem::path repository_;
  server::ServerMetrics* const metrics_;
  std::unique_ptr<server::Scheduler> scheduler_;
  std::unique_ptr<server::ModelRegistry> registry_;
  std::unique_ptr<server::ModelLifecycle> lifecycle_;
  std::unique_ptr<grpc::Service> service_;
  std::unique_ptr<grpc::Server> server_;
};

}  // namespace nnserve::testing

#endif  // NNSERVE_TESTS_SERVER_SERVICE_TEST_UTIL_H_
