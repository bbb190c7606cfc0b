// What reloads leave behind, against the real binary in poll mode: the
// metrics follow the lifecycle (nnserve_model_loaded per served version,
// every per-version series of an unloaded version removed,
// nnserve_model_loads_total counting failures once per bad load,
// nnserve_model_load_duration_seconds present), scraped over the real
// /metrics endpoint; and a several-MB model reloaded a dozen times, with
// calls in flight, does not grow the server's resident memory by more than
// about one model (VmRSS from /proc; a memory check, not a timing one).
#include <chrono>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/server/integration/lifecycle_fixture.h"
#include "tests/util/live_repository.h"
#include "tests/util/process_memory.h"
#include "tests/util/tensor_files.h"

namespace nnserve::testing {
namespace {

using engine::Activation;
using engine::WeightLayout;
using std::chrono::seconds;
using ::testing::IsEmpty;
using ::testing::Not;
using State = v1::ModelVersionStatus;

constexpr double kPollSeconds = 0.2;

double Sum(const std::vector<double>& values) {
  return std::accumulate(values.begin(), values.end(), 0.0);
}

absl::StatusOr<std::string> Scrape(const RunningServer& server) {
  return ScrapeMetrics(*server.process);
}

std::vector<int64_t> Available(const v1::ListModelsResponse& list) {
  return VersionsIn(list, "m", State::AVAILABLE);
}

TEST(ModelReloadResourcesIntegrationTest, MetricsFollowTheLifecycle) {
  LiveRepository repo;
  auto version = [](uint32_t seed) {
    return BuildRandomModel(
        "m", 8,
        {LayerDef(16, Activation::kRelu), LayerDef(4, Activation::kSoftmax)},
        WeightLayout::kOutIn, seed);
  };
  const RandomModel v1 = version(1), v2 = version(2), v3 = version(3);
  repo.AddModel(v1.config, {{1, v1.tensors}});
  absl::StatusOr<RunningServer> server =
      StartServer(PollingServerOptions(repo.path(), kPollSeconds));
  ASSERT_TRUE(server.ok()) << server.status();
  // Calls on version 1 create its per-version inference series.
  absl::StatusOr<v1::PredictRequest> request =
      MakePredictRequest("m", 0, RandomRows(2, 8, 1), Encoding::kValues);
  ASSERT_TRUE(request.ok()) << request.status();
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(server->client->Predict(*request).ok());
  }
  absl::StatusOr<std::string> text = Scrape(*server);
  ASSERT_TRUE(text.ok()) << text.status();
  EXPECT_EQ(SampleValues(*text, "nnserve_model_loaded",
                         {{"model", "m"}, {"version", "1"}}),
            std::vector<double>{1});
  ASSERT_THAT(SeriesWith(*text, {{"model", "m"}, {"version", "1"}}),
              Not(IsEmpty()));

  // Version 2 replaces 1: 2 is loaded, and nothing about 1 remains.
  repo.AddVersion("m", 2, v2.tensors);
  absl::StatusOr<v1::ListModelsResponse> list = WaitForList(
      *server,
      [](const v1::ListModelsResponse& l) {
        return Available(l) == std::vector<int64_t>{2};
      },
      "version 2 alone AVAILABLE");
  ASSERT_TRUE(list.ok()) << list.status();
  ASSERT_TRUE(server->client->Predict(*request).ok());
  text = Scrape(*server);
  ASSERT_TRUE(text.ok()) << text.status();
  EXPECT_EQ(SampleValues(*text, "nnserve_model_loaded",
                         {{"model", "m"}, {"version", "2"}}),
            std::vector<double>{1});
  EXPECT_THAT(SeriesWith(*text, {{"model", "m"}, {"version", "1"}}), IsEmpty());
  EXPECT_THAT(SampleValues(*text, "nnserve_model_loads_total",
                           {{"model", "m"}, {"result", "failure"}}),
              ::testing::AnyOf(IsEmpty(), ::testing::ElementsAre(0.0)));

  // A corrupt version 3 (NaN weights) fails once and is counted once.
  RandomModel bad = v3;
  bad.tensors.at("fc0.weight").values[5] = std::nanf("");
  repo.AddVersion("m", 3, bad.tensors);
  list = WaitForList(
      *server,
      [](const v1::ListModelsResponse& l) {
        auto versions = Versions(l, "m");
        return versions.count(3) && versions[3].state() == State::FAILED;
      },
      "version 3 FAILED");
  ASSERT_TRUE(list.ok()) << list.status();
  EXPECT_EQ(Available(*list), std::vector<int64_t>{2}) << ListText(*list);
  text = Scrape(*server);
  ASSERT_TRUE(text.ok()) << text.status();
  EXPECT_EQ(Sum(SampleValues(*text, "nnserve_model_loads_total",
                             {{"model", "m"}, {"result", "failure"}})),
            1)
      << *text;
  EXPECT_EQ(SampleValues(*text, "nnserve_model_loaded",
                         {{"model", "m"}, {"version", "2"}}),
            std::vector<double>{1});
  bool duration_present = false;
  for (const std::string& line : SeriesWith(*text, {{"model", "m"}})) {
    duration_present =
        duration_present ||
        line.rfind("nnserve_model_load_duration_seconds", 0) == 0;
  }
  EXPECT_TRUE(duration_present)
      << "no nnserve_model_load_duration_seconds series for model m";

  // Fixed: 3 loads, 2 goes, and the failure is still counted once (an
  // unchanged bad version is not retried on every scan).
  repo.ReplaceWeights("m", 3, v3.tensors);
  list = WaitForList(
      *server,
      [](const v1::ListModelsResponse& l) {
        return Available(l) == std::vector<int64_t>{3};
      },
      "version 3 AVAILABLE after its weights were fixed");
  ASSERT_TRUE(list.ok()) << list.status();
  text = Scrape(*server);
  ASSERT_TRUE(text.ok()) << text.status();
  EXPECT_EQ(SampleValues(*text, "nnserve_model_loaded",
                         {{"model", "m"}, {"version", "3"}}),
            std::vector<double>{1});
  EXPECT_THAT(SeriesWith(*text, {{"model", "m"}, {"version", "2"}}), IsEmpty());
  EXPECT_EQ(Sum(SampleValues(*text, "nnserve_model_loads_total",
                             {{"model", "m"}, {"result", "failure"}})),
            1);
  // v1, v2, the failed v3 and the good v3, whatever the success label.
  EXPECT_GE(
      Sum(SampleValues(*text, "nnserve_model_loads_total", {{"model", "m"}})),
      4);
}

// 784 → 1024 RELU → 1024 RELU → 10 SOFTMAX: 1.86 M parameters, 7.4 MB of
// f32 weights.
RandomModel BigModel(uint32_t seed) {
  return BuildRandomModel(
      "big", 784,
      {LayerDef(1024, Activation::kRelu), LayerDef(1024, Activation::kRelu),
       LayerDef(10, Activation::kSoftmax)},
      WeightLayout::kOutIn, seed);
}

TEST(ModelReloadResourcesIntegrationTest, RepeatedReloadsDoNotGrowMemory) {
  LiveRepository repo;
  const RandomModel a = BigModel(1), b = BigModel(2);
  repo.AddModel(a.config, {{1, a.tensors}});
  absl::StatusOr<RunningServer> server =
      StartServer(PollingServerOptions(repo.path(), kPollSeconds));
  ASSERT_TRUE(server.ok()) << server.status();

  constexpr int64_t kRows = 4;  // Above the inline limit: the workers run it.
  const RowBatch rows = RandomRows(kRows, 784, 3);
  absl::StatusOr<v1::PredictRequest> request =
      MakePredictRequest("big", 0, rows, Encoding::kRaw);
  ASSERT_TRUE(request.ok()) << request.status();
  const std::vector<ExpectedAnswer> expected = {
      {"a", 1, ReferenceOutput(a, rows)}, {"b", 1, ReferenceOutput(b, rows)}};
  CallLoop loop(*server->client, *request, kRows, expected, {.threads = 2});

  // Replaces version 1's weights with `next` and waits until a fresh call
  // is answered with them.
  auto reload = [&](const RandomModel& next, const ExpectedAnswer& want) {
    repo.ReplaceWeights("big", 1, next.tensors);
    absl::Status swapped = server->process->WaitUntil(
        [&] {
          absl::StatusOr<v1::PredictResponse> response =
              server->client->Predict(*request);
          if (!response.ok()) return false;
          absl::StatusOr<RowBatch> output = DecodeTensor(response->output());
          return output.ok() && MaxRowRelativeError(output->values, want.output,
                                                    kRows) <= 1e-5;
        },
        seconds(30), absl::StrCat("weights '", want.label, "' served"));
    ASSERT_TRUE(swapped.ok()) << swapped;
  };

  // One reload first, so the baseline includes whatever a first reload
  // sets up once (allocator arenas, the loader thread's stack).
  ASSERT_NO_FATAL_FAILURE(reload(b, expected[1]));
  absl::StatusOr<int64_t> baseline = ResidentBytes(server->process->pid());
  ASSERT_TRUE(baseline.ok()) << baseline.status();

  constexpr int kReloads = 12;
  for (int i = 0; i < kReloads; ++i) {
    const bool to_a = i % 2 == 0;
    ASSERT_NO_FATAL_FAILURE(reload(to_a ? a : b, expected[to_a ? 0 : 1]))
        << "reload " << i;
  }
  loop.Stop();
  EXPECT_EQ(loop.errors(), 0) << loop.Summary();
  EXPECT_EQ(loop.mismatches(), 0) << loop.Summary();
  EXPECT_GT(loop.answers("a") + loop.answers("b"), 0) << loop.Summary();

  // The bound: once the last reload has settled (the replaced
  // version's calls ended and the lifecycle trimmed the heap), growth
  // beyond one model's size is a leak or memory the allocator kept. 4 MiB
  // of slack for thread caches and metric series. A version leaked per
  // reload would add >= 12 x 7.4 MB and never settle.
  const int64_t weight_bytes = static_cast<int64_t>(
      SafetensorsBytes(a.tensors, formats::DType::kF32).size());
  const int64_t allowed = weight_bytes + (4 << 20);
  int64_t last = 0;
  absl::Status settled = server->process->WaitUntil(
      [&] {
        absl::StatusOr<int64_t> rss = ResidentBytes(server->process->pid());
        if (!rss.ok()) return false;
        last = *rss;
        return last - *baseline <= allowed;
      },
      seconds(30), "VmRSS back within one model of the baseline");
  EXPECT_TRUE(settled.ok())
      << "VmRSS " << *baseline / 1024 << " kB after the first reload, "
      << last / 1024 << " kB after " << kReloads << " more (model "
      << weight_bytes / 1024 << " kB)";
  ::testing::Test::RecordProperty("rss_baseline_kb", *baseline / 1024);
  ::testing::Test::RecordProperty("rss_after_kb", last / 1024);
}

}  // namespace
}  // namespace nnserve::testing
