// Fairness across models in the real binary (issue 9, "Scheduling"): with
// `heavy` (1024 → 1024 → 1024 → 1024 → 10) flooded by 24 callers sending
// 256-row requests, `mid` (784 → 512 → 512 → 10) called one call at a time
// with a 2 s deadline keeps being answered — many answers, none failing
// (no DEADLINE_EXCEEDED) — while `heavy` keeps being answered too. Every
// answer is checked against the reference output. The latency figures
// belong to bench/fairness_bench.sh; this test only counts answers and
// errors, with every phase bounded in calls and time.
#include <chrono>
#include <cstdint>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "tests/server/integration/call_loop.h"

namespace nnserve::testing {
namespace {

using engine::Activation;
using engine::WeightLayout;
using std::chrono::milliseconds;
using std::chrono::seconds;

constexpr int kHeavyCallers = 24;
constexpr int64_t kHeavyRows = 256;
constexpr int64_t kMidRows = 1;
// How long mid is called while heavy is flooded, and the least number of
// answers it must get in that time (a fair scheduler gives it dozens; the
// unfair one of before gave it none in 4 s).
constexpr milliseconds kMidWindow = seconds(4);
constexpr int64_t kMinMidAnswers = 10;

RandomModel Heavy() {
  return BuildRandomModel(
      "heavy", 1024,
      {LayerDef(1024, Activation::kRelu), LayerDef(1024, Activation::kRelu),
       LayerDef(1024, Activation::kRelu), LayerDef(10, Activation::kSoftmax)},
      WeightLayout::kOutIn, 21);
}

RandomModel Mid() {
  return BuildRandomModel(
      "mid", 784,
      {LayerDef(512, Activation::kRelu), LayerDef(512, Activation::kRelu),
       LayerDef(10, Activation::kSoftmax)},
      WeightLayout::kOutIn, 22);
}

TEST(FairnessIntegrationTest, MidIsAnsweredWhileHeavyIsFlooded) {
  ScopedTempDir repo("nnserve_fairness_itest");
  const RandomModel heavy = Heavy(), mid = Mid();
  WriteModelDir(repo.path(), heavy, 1, FileFormat::kSafetensors,
                formats::DType::kF32);
  WriteModelDir(repo.path(), mid, 1, FileFormat::kSafetensors,
                formats::DType::kF32);
  ServerOptions options;
  options.model_repository = repo.path();
  options.extra_args = {"--threads=2"};
  absl::StatusOr<RunningServer> server = StartServer(options);
  ASSERT_TRUE(server.ok()) << server.status();

  const RowBatch heavy_rows = RandomRows(kHeavyRows, 1024, 1);
  const RowBatch mid_rows = RandomRows(kMidRows, 784, 2);
  absl::StatusOr<v1::PredictRequest> heavy_request =
      MakePredictRequest("heavy", 0, heavy_rows, Encoding::kRaw);
  absl::StatusOr<v1::PredictRequest> mid_request =
      MakePredictRequest("mid", 0, mid_rows, Encoding::kRaw);
  ASSERT_TRUE(heavy_request.ok()) << heavy_request.status();
  ASSERT_TRUE(mid_request.ok()) << mid_request.status();

  // The flood: 24 callers, each with one 256-row call in flight at a time
  // (a generous deadline: heavy may wait, it must not fail).
  CallLoop flood(*server->client, *heavy_request, kHeavyRows,
                 {{"heavy", 1, ReferenceOutput(heavy, heavy_rows)}},
                 {.threads = kHeavyCallers, .deadline = seconds(60)});
  // Every caller has had a call answered once the flood has run a while:
  // from here on the queue is full of heavy work.
  ASSERT_TRUE(flood.WaitForMoreAnswers("heavy", kHeavyCallers, seconds(120)))
      << flood.Summary();
  const int64_t heavy_before = flood.answers("heavy");

  // mid: one call at a time, each with a 2 s deadline, for kMidWindow.
  int64_t mid_answers = 0;
  {
    CallLoop probe(*server->client, *mid_request, kMidRows,
                   {{"mid", 1, ReferenceOutput(mid, mid_rows)}},
                   {.threads = 1, .deadline = seconds(2)});
    std::this_thread::sleep_for(kMidWindow);
    probe.Stop();
    mid_answers = probe.answers("mid");
    EXPECT_EQ(probe.errors(), 0) << "mid: " << probe.Summary();
    EXPECT_EQ(probe.mismatches(), 0) << "mid: " << probe.Summary();
    EXPECT_GE(mid_answers, kMinMidAnswers) << "mid: " << probe.Summary();
  }
  const int64_t heavy_during = flood.answers("heavy") - heavy_before;
  flood.Stop();

  // heavy kept being served beside mid, without an error.
  EXPECT_GE(heavy_during, 1) << flood.Summary();
  EXPECT_EQ(flood.errors(), 0) << flood.Summary();
  EXPECT_EQ(flood.mismatches(), 0) << flood.Summary();
  ::testing::Test::RecordProperty("mid_answers", mid_answers);
  ::testing::Test::RecordProperty("heavy_answers_during_mid", heavy_during);
}

}  // namespace
}  // namespace nnserve::testing
