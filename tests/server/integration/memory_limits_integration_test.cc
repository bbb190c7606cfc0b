// Bounded memory against the real binary (issue 10): 64 callers, each on a
// connection of its own, send 16 MiB requests (1024 rows x 4096 features,
// raw encoding) back to back for a while to a server started with
// --max-memory-bytes 134217728. The server's resident set size, sampled
// every 10 ms and read as VmHWM at the end, must stay under its RSS at the
// start + the quota + 96 MiB; it answers only OK, RESOURCE_EXHAUSTED or
// UNAVAILABLE, some calls succeed (with exactly the reference output), and
// a normal call afterwards works. Also checks the message limit the server
// derived from the model (no --max-message-bytes given).
//
// The request is serialized once and shared by every call (memory_load.h),
// so the test process itself stays small. The flood lasts a fixed time;
// pass/fail never depends on how many calls got through in it.
#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/server/integration/integration_fixture.h"
#include "tests/server/integration/memory_load.h"
#include "tests/util/process_memory.h"

namespace nnserve::testing {
namespace {

constexpr int64_t kFeatures = 4096;
constexpr int64_t kRows = 1024;  // 16 MiB of float32 per request.
constexpr int64_t kQuota = 134217728;
constexpr int64_t kSlack = int64_t{96} << 20;
constexpr int kCallers = 64;
constexpr auto kFloodTime = std::chrono::seconds(10);

// 4096 → 16 RELU → 4: cheap forward passes, so that memory, not compute,
// is what the flood presses on.
RandomModel WideModel() {
  return BuildRandomModel("wide", kFeatures,
                          {LayerDef(16, engine::Activation::kRelu),
                           LayerDef(4, engine::Activation::kIdentity)},
                          engine::WeightLayout::kOutIn, 11);
}

constexpr double MiB(int64_t bytes) {
  return static_cast<double>(bytes) / (1 << 20);
}

TEST(MemoryLimitsIntegrationTest, FloodOf16MiBRequestsStaysWithinTheQuota) {
  ScopedTempDir repo("nnserve_memory_limits");
  const RandomModel model = WideModel();
  WriteModelDir(repo.path(), model, 1, FileFormat::kSafetensors,
                formats::DType::kF32);
  ServerOptions options;
  options.model_repository = repo.path();
  options.extra_args = {"--max-memory-bytes=134217728", "--max-batch-rows=1024",
                        "--threads=2"};
  absl::StatusOr<RunningServer> server = StartServer(options);
  ASSERT_TRUE(server.ok()) << server.status();
  ServerProcess& process = *server->process;

  // No --max-message-bytes: derived from the model, 16 MiB + 64 KiB.
  absl::StatusOr<std::string> limit = process.WaitForLogValue(
      "event=message_limit bytes=", std::chrono::seconds(5));
  ASSERT_TRUE(limit.ok()) << limit.status();
  EXPECT_EQ(*limit, absl::StrCat(kRows * kFeatures * 4 + (64 << 10)));

  const RowBatch rows = RandomRows(kRows, kFeatures, 5);
  absl::StatusOr<v1::PredictRequest> request =
      MakePredictRequest("wide", 0, rows, Encoding::kRaw);
  ASSERT_TRUE(request.ok()) << request.status();
  const grpc::ByteBuffer shared = SerializeToByteBuffer(*request);
  const std::vector<double> expected = ReferenceOutput(model, rows);

  // One call before the flood, so that the start RSS includes what the
  // first 1024-row forward pass allocates for good.
  RawCaller warm(process.grpc_target());
  grpc::ByteBuffer warm_response;
  const grpc::Status warm_status = warm.Call(
      kPredictMethod, shared, &warm_response, std::chrono::seconds(60));
  ASSERT_TRUE(warm_status.ok()) << warm_status.error_message();
  absl::StatusOr<int64_t> start_rss = ResidentBytes(process.pid());
  ASSERT_TRUE(start_rss.ok()) << start_rss.status();

  std::mutex mutex;
  std::map<grpc::StatusCode, int64_t> codes;
  std::map<grpc::StatusCode, std::string> example;
  int64_t wrong_outputs = 0;
  RssSampler sampler(process.pid(), std::chrono::milliseconds(10));
  const auto end = std::chrono::steady_clock::now() + kFloodTime;
  std::vector<std::thread> callers;
  for (int i = 0; i < kCallers; ++i) {
    callers.emplace_back([&] {
      RawCaller caller(process.grpc_target());
      while (std::chrono::steady_clock::now() < end) {
        grpc::ByteBuffer response_buffer;
        const grpc::Status status = caller.Call(
            kPredictMethod, shared, &response_buffer, std::chrono::seconds(30));
        bool exact = true;
        if (status.ok()) {
          v1::PredictResponse response;
          absl::StatusOr<RowBatch> output =
              ParseByteBuffer(response_buffer, &response)
                  ? DecodeTensor(response.output())
                  : absl::InternalError("unparsable response");
          exact = output.ok() && output->rows == kRows &&
                  MaxRowRelativeError(output->values, expected, kRows) <= 1e-5;
        }
        std::lock_guard<std::mutex> lock(mutex);
        ++codes[status.error_code()];
        example.emplace(status.error_code(), status.error_message());
        if (!exact) ++wrong_outputs;
      }
    });
  }
  for (std::thread& caller : callers) caller.join();
  const int64_t sampled_peak = sampler.Stop();
  absl::StatusOr<int64_t> hwm = PeakResidentBytes(process.pid());
  ASSERT_TRUE(hwm.ok()) << hwm.status();

  std::string summary;
  for (const auto& [code, count] : codes) {
    absl::StrAppend(&summary, "\n  code ", static_cast<int>(code), ": ", count,
                    " calls, e.g. '", example[code], "'");
  }
  const int64_t bound = *start_rss + kQuota + kSlack;
  std::cout << "[ memory ] start RSS " << MiB(*start_rss)
            << " MiB, sampled peak " << MiB(sampled_peak) << " MiB, VmHWM "
            << MiB(*hwm) << " MiB, bound " << MiB(bound) << " MiB" << summary
            << "\n";

  EXPECT_LT(sampled_peak, bound);
  EXPECT_LT(*hwm, bound);
  for (const auto& [code, count] : codes) {
    EXPECT_TRUE(code == grpc::StatusCode::OK ||
                code == grpc::StatusCode::RESOURCE_EXHAUSTED ||
                code == grpc::StatusCode::UNAVAILABLE)
        << count << " calls answered with code " << static_cast<int>(code)
        << ": " << example[code];
  }
  EXPECT_GT(codes[grpc::StatusCode::OK], 0) << summary;
  EXPECT_EQ(wrong_outputs, 0);

  // A normal call afterwards works.
  const RowBatch small = RandomRows(2, kFeatures, 6);
  absl::StatusOr<v1::PredictRequest> small_request =
      MakePredictRequest("wide", 0, small, Encoding::kValues);
  ASSERT_TRUE(small_request.ok()) << small_request.status();
  v1::PredictResponse small_response;
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::seconds(30));
  const grpc::Status status =
      server->client->stub().Predict(&context, *small_request, &small_response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  absl::StatusOr<RowBatch> small_output = DecodeTensor(small_response.output());
  ASSERT_TRUE(small_output.ok()) << small_output.status();
  EXPECT_LE(MaxRowRelativeError(small_output->values,
                                ReferenceOutput(model, small), 2),
            1e-5);
}

}  // namespace
}  // namespace nnserve::testing
