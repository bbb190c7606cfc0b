// Shared helpers for the in-process frontend tests
// (inference_service_test.cc, repository_service_test.cc): building a
// random [rows, cols] input tensor in either encoding, reading a tensor's
// floats back, reading nnserve_requests_total, and starting a loopback
// gRPC server for a service under test.
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
#include <vector>

#include "engine/model.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "nnserve/v1/inference.pb.h"
#include "server/observability/metrics.h"
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

}  // namespace nnserve::testing

#endif  // NNSERVE_TESTS_SERVER_SERVICE_TEST_UTIL_H_
