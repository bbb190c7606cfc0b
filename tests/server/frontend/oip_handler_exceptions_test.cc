// Exceptions inside OipInferenceService's ModelInfer (server/frontend/
// oip_service.h): an allocation that fails while the call is being decoded
// is that call's RESOURCE_EXHAUSTED, counted with method="ModelInfer", the
// call is finished and counted out of the drain tracker, and the server
// serves on.
//
// Memory runs out for real, as in handler_exceptions_test.cc: this binary
// replaces the global operator new with one that throws std::bad_alloc for
// requests of at least `g_fail_at_least` bytes (off by default). The model
// answers one input with 262 144 outputs, so the output buffer ModelInfer
// allocates for a one-row call (1 MiB) is the only allocation that large
// while the test arms the limit.
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <memory>
#include <new>
#include <string>

#include "gmock/gmock.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "server/frontend/oip_service.h"
#include "server/lifecycle/model_lifecycle.h"
#include "server/lifecycle/model_registry.h"
#include "server/scheduling/scheduler.h"
#include "tests/server/frontend/service_test_util.h"
#include "tests/util/model_builder.h"

namespace {
std::atomic<size_t> g_fail_at_least{~size_t{0}};
}  // namespace

void* operator new(size_t size) {
  if (size >= g_fail_at_least.load(std::memory_order_relaxed)) {
    throw std::bad_alloc();
  }
  if (void* p = std::malloc(size == 0 ? 1 : size)) return p;
  throw std::bad_alloc();
}
// The nothrow forms too: gRPC allocates with new(std::nothrow) and frees
// with the delete above, which must get a block from malloc
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

TEST(OipHandlerExceptionsTest, AllocationFailureInModelInferIsThatCallsError) {
  ScopedTempDir repo("oip_handler_exceptions_test");
  RandomModel model = BuildRandomModel(
      "wide_out", 1, {{kOutputs, engine::Activation::kIdentity}},
      engine::WeightLayout::kOutIn, 5);
  nnserve::testing::WriteModelDir(repo.path(), model, 1,
                                  nnserve::testing::FileFormat::kSafetensors,
                                  formats::DType::kF32);
  ServerMetrics metrics("test");
  Scheduler scheduler({.threads = 1});
  ModelRegistry registry(&metrics);
  ModelLifecycle lifecycle(ModelLifecycle::Options{.repository = repo.path()},
                           &registry, &scheduler, &metrics);
  ASSERT_TRUE(lifecycle.Start().ok());
  OipInferenceService service(&registry, &scheduler, &metrics, {}, "test");
  std::unique_ptr<grpc::Server> server;
  std::shared_ptr<grpc::Channel> channel;
  ASSERT_NO_FATAL_FAILURE(
      nnserve::testing::StartLoopbackServer(&service, &server, &channel));
  auto stub = inference::GRPCInferenceService::NewStub(channel);

  inference::ModelInferRequest request;
  request.set_model_name("wide_out");
  auto* input = request.add_inputs();
  input->set_datatype("FP32");
  input->add_shape(1);
  input->add_shape(1);
  input->mutable_contents()->add_fp32_contents(0.5f);
  const auto infer = [&](inference::ModelInferResponse* response) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() +
                         std::chrono::seconds(30));
    return stub->ModelInfer(&context, request, response);
  };

  // The first allocation of 512 KiB or more is the call's output buffer.
  g_fail_at_least = 512 * 1024;
  inference::ModelInferResponse refused;
  const grpc::Status status = infer(&refused);
  g_fail_at_least = ~size_t{0};
  EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED)
      << status.error_message();
  EXPECT_THAT(status.error_message(),
              HasSubstr("out of memory while handling ModelInfer"));
  EXPECT_EQ(nnserve::testing::RequestCount(metrics, "wide_out", "ModelInfer",
                                           "RESOURCE_EXHAUSTED"),
            1);
  // The refused call was counted out: nothing is in flight.
  EXPECT_TRUE(service.WaitForIdle(std::chrono::system_clock::now() +
                                  std::chrono::seconds(5)));

  // The server serves on.
  inference::ModelInferResponse answered;
  const grpc::Status ok = infer(&answered);
  ASSERT_TRUE(ok.ok()) << ok.error_message();
  ASSERT_EQ(answered.outputs_size(), 1);
  EXPECT_EQ(answered.outputs(0).contents().fp32_contents_size(), kOutputs);

  server->Shutdown();
  lifecycle.Stop();
  scheduler.Shutdown();
}

}  // namespace
}  // namespace nnserve::server
