// Exceptions inside the gRPC handlers (server/frontend/inference_service.h
// and oip_service.h): an allocation that fails while a Predict or a
// ModelInfer is being decoded or answered is that call's
// RESOURCE_EXHAUSTED, counted under its method, the call is finished and
// counted out of the drain tracker, and the server serves on. Without the
// handlers' boundary the exception escapes into gRPC, which answers
// UNKNOWN/UNIMPLEMENTED (or ends the process), and the in-flight count
// never returns to zero, so every later shutdown waits its timeout.
//
// Memory runs out for real: this test binary replaces the global operator
// new with one that throws std::bad_alloc for requests of at least
// `g_fail_at_least` bytes (off by default). The model answers one input
// with 262 144 outputs, so the output buffer a handler allocates for a
// one-row call (1 MiB) is the only allocation that large while a test arms
// the limit.
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <memory>
#include <new>
#include <string>
#include <utility>

#include "gmock/gmock.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "server/frontend/inference_service.h"
#include "server/frontend/oip_service.h"
#include "server/lifecycle/model_lifecycle.h"
#include "server/lifecycle/model_registry.h"
#include "server/scheduling/scheduler.h"
#include "tests/server/frontend/service_test_util.h"
#include "tests/util/model_builder.h"

namespace {
std::atomic<size_t> g_fail_at_least{~size_t{0}};
}  // namespace

// GCC inlines these into their callers and then warns that free() meets a
// pointer from operator new: here that pairing is exactly the point.
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"

void* operator new(size_t size) {
  if (size >= g_fail_at_least.load(std::memory_order_relaxed)) {
    throw std::bad_alloc();
  }
  if (void* p = std::malloc(size == 0 ? 1 : size)) return p;
  throw std::bad_alloc();
}
// The nothrow forms too: gRPC allocates with new(std::nothrow) and frees
// with the delete below, which must get a block from malloc
// (AddressSanitizer reported alloc-dealloc-mismatch while only the
// throwing form was replaced).
void* operator new(size_t size, const std::nothrow_t&) noexcept {
  if (size >= g_fail_at_least.load(std::memory_order_relaxed)) return nullptr;
  return std::malloc(size == 0 ? 1 : size);
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, size_t) noexcept { std::free(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { std::free(p); }

namespace nnserve::server {
namespace {

using nnserve::testing::BuildRandomModel;
using nnserve::testing::RandomModel;
using nnserve::testing::ScopedTempDir;
using ::testing::HasSubstr;

constexpr int64_t kOutputs = 262144;

// The model "wide_out" (1 input, kOutputs outputs) loaded into a registry,
// and a loopback gRPC server for the service under test.
class HandlerExceptionsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    RandomModel model = BuildRandomModel(
        "wide_out", 1, {{kOutputs, engine::Activation::kIdentity}},
        engine::WeightLayout::kOutIn, 5);
    nnserve::testing::WriteModelDir(repo_.path(), model, 1,
                                    nnserve::testing::FileFormat::kSafetensors,
                                    formats::DType::kF32);
    ASSERT_NO_FATAL_FAILURE(stack_.Start({.threads = 1}));
  }
  void TearDown() override { stack_.Stop(); }

  // Runs `call` with allocations of 512 KiB or more failing (the first is
  // the call's output buffer), then checks the answer, the metrics and
  // that nothing stays in flight.
  void ExpectRefusedWhileMemoryRunsOut(
      const std::function<grpc::Status()>& call, const std::string& method,
      const std::function<bool()>& idle) {
    g_fail_at_least = 512 * 1024;
    const grpc::Status status = call();
    g_fail_at_least = ~size_t{0};
    EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED)
        << status.error_message();
    EXPECT_THAT(status.error_message(),
                HasSubstr("out of memory while handling " + method));
    EXPECT_EQ(nnserve::testing::RequestCount(metrics_, "wide_out", method,
                                             "RESOURCE_EXHAUSTED"),
              1);
    EXPECT_TRUE(idle());  // The refused call was counted out.
  }

  static std::chrono::system_clock::time_point Soon() {
    return std::chrono::system_clock::now() + std::chrono::seconds(5);
  }

  ScopedTempDir repo_{"handler_exceptions_test"};
  ServerMetrics metrics_{"test"};
  nnserve::testing::ServingStack stack_{repo_.path(), &metrics_};
};

TEST_F(HandlerExceptionsTest, AllocationFailureInPredictIsThatCallsError) {
  auto owned = std::make_unique<InferenceService>(
      stack_.registry(), stack_.scheduler(), &metrics_, ServiceOptions{});
  InferenceService* service = owned.get();
  auto stub = v1::Inference::NewStub(stack_.Serve(std::move(owned)));
  v1::PredictRequest request;
  request.set_model("wide_out");
  nnserve::testing::FillRandomInput(request.mutable_input(), 1, 1,
                                    /*raw=*/true, 3);
  v1::PredictResponse response;
  const auto predict = [&] {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() +
                         std::chrono::seconds(30));
    return stub->Predict(&context, request, &response);
  };
  ExpectRefusedWhileMemoryRunsOut(predict, "Predict",
                                  [&] { return service->WaitForIdle(Soon()); });
  // The server serves on.
  const grpc::Status ok = predict();
  ASSERT_TRUE(ok.ok()) << ok.error_message();
  EXPECT_EQ(nnserve::testing::TensorFloats(response.output()).size(),
            static_cast<size_t>(kOutputs));
}

TEST_F(HandlerExceptionsTest, AllocationFailureInModelInferIsThatCallsError) {
  auto owned = std::make_unique<OipInferenceService>(
      stack_.registry(), stack_.scheduler(), ServiceOptions{}, "test");
  OipInferenceService* service = owned.get();
  auto stub =
      inference::GRPCInferenceService::NewStub(stack_.Serve(std::move(owned)));
  inference::ModelInferRequest request;
  request.set_model_name("wide_out");
  auto* input = request.add_inputs();
  input->set_name("x");  // tests/util/model_builder's input name.
  input->set_datatype("FP32");
  input->add_shape(1);
  input->add_shape(1);
  input->mutable_contents()->add_fp32_contents(0.5f);
  inference::ModelInferResponse response;
  const auto infer = [&] {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() +
                         std::chrono::seconds(30));
    return stub->ModelInfer(&context, request, &response);
  };
  ExpectRefusedWhileMemoryRunsOut(infer, "ModelInfer",
                                  [&] { return service->WaitForIdle(Soon()); });
  // The server serves on.
  const grpc::Status ok = infer();
  ASSERT_TRUE(ok.ok()) << ok.error_message();
  ASSERT_EQ(response.outputs_size(), 1);
  EXPECT_EQ(response.outputs(0).contents().fp32_contents_size(), kOutputs);
}

}  // namespace
}  // namespace nnserve::server
