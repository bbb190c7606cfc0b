#include "server/observability/metrics.h"

#include <unistd.h>

#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "prometheus/text_serializer.h"
#include "server/observability/process_metrics.h"

namespace nnserve::server {
namespace {

using ::testing::Contains;
using ::testing::HasSubstr;
using ::testing::Not;

const prometheus::MetricFamily* FindFamily(
    const std::vector<prometheus::MetricFamily>& families,
    const std::string& name) {
  for (const auto& f : families) {
    if (f.name == name) return &f;
  }
  return nullptr;
}

bool HasLabels(const prometheus::ClientMetric& metric,
               const std::map<std::string, std::string>& labels) {
  if (metric.label.size() != labels.size()) return false;
  for (const auto& label : metric.label) {
    auto it = labels.find(label.name);
    if (it == labels.end() || it->second != label.value) return false;
  }
  return true;
}

const prometheus::ClientMetric* FindMetric(
    const std::vector<prometheus::MetricFamily>& families,
    const std::string& name, const std::map<std::string, std::string>& labels) {
  const prometheus::MetricFamily* family = FindFamily(families, name);
  if (family == nullptr) return nullptr;
  for (const auto& metric : family->metric) {
    if (HasLabels(metric, labels)) return &metric;
  }
  return nullptr;
}
// The result points into `families`: a temporary Collect() result would be
// gone before the pointer is read (AddressSanitizer found two such
// heap-use-after-free reads), so that overload does not exist.
const prometheus::ClientMetric* FindMetric(
    std::vector<prometheus::MetricFamily>&& families, const std::string& name,
    const std::map<std::string, std::string>& labels) = delete;

std::string Serialize(const std::vector<prometheus::MetricFamily>& families) {
  std::ostringstream out;
  prometheus::TextSerializer().Serialize(out, families);
  return out.str();
}

TEST(LatencyBucketsTest, SpanOneMicrosecondToSeconds) {
  const auto buckets = LatencyBuckets();
  ASSERT_FALSE(buckets.empty());
  EXPECT_DOUBLE_EQ(buckets.front(), 1e-6);
  EXPECT_GT(buckets.back(), 5.0);
  for (size_t i = 1; i < buckets.size(); ++i) {
    EXPECT_DOUBLE_EQ(buckets[i], 2 * buckets[i - 1]);
  }
}

TEST(ServerMetricsTest, BuildInfoCarriesTheVersion) {
  ServerMetrics metrics("1.2.3");
  const auto families = metrics.registry()->Collect();
  const auto* info =
      FindMetric(families, "nnserve_build_info", {{"version", "1.2.3"}});
  ASSERT_NE(info, nullptr);
  EXPECT_EQ(info->gauge.value, 1);
}

TEST(ServerMetricsTest, InferenceRecordsLatencyRowsAndEveryLayer) {
  ServerMetrics metrics("0.1.0");
  std::shared_ptr<ModelVersionMetrics> m =
      metrics.ForModelVersion("digits", 3, {"hidden", "output"});
  const std::vector<double> layers = {2e-6, 5e-6};
  m->RecordInference(1e-5, 4, layers);
  m->RecordInference(3e-5, 2, layers);
  m->SetLoaded(true);

  const auto families = metrics.registry()->Collect();
  const auto* inference =
      FindMetric(families, "nnserve_inference_duration_seconds",
                 {{"model", "digits"}, {"version", "3"}});
  ASSERT_NE(inference, nullptr);
  EXPECT_EQ(inference->histogram.sample_count, 2u);
  EXPECT_NEAR(inference->histogram.sample_sum, 4e-5, 1e-12);

  for (const std::string layer : {"hidden", "output"}) {
    const auto* series =
        FindMetric(families, "nnserve_layer_duration_seconds",
                   {{"model", "digits"}, {"version", "3"}, {"layer", layer}});
    ASSERT_NE(series, nullptr) << layer;
    EXPECT_EQ(series->histogram.sample_count, 2u);
  }
  const auto* hidden =
      FindMetric(families, "nnserve_layer_duration_seconds",
                 {{"model", "digits"}, {"version", "3"}, {"layer", "hidden"}});
  EXPECT_NEAR(hidden->histogram.sample_sum, 4e-6, 1e-12);
  // 2 µs lands in the 2 µs bucket (le is inclusive) but not the 1 µs one.
  EXPECT_EQ(hidden->histogram.bucket[0].cumulative_count, 0u);
  EXPECT_EQ(hidden->histogram.bucket[1].cumulative_count, 2u);

  const auto* rows = FindMetric(families, "nnserve_inference_rows_total",
                                {{"model", "digits"}, {"version", "3"}});
  ASSERT_NE(rows, nullptr);
  EXPECT_EQ(rows->counter.value, 6);
  const auto* loaded = FindMetric(families, "nnserve_model_loaded",
                                  {{"model", "digits"}, {"version", "3"}});
  ASSERT_NE(loaded, nullptr);
  EXPECT_EQ(loaded->gauge.value, 1);
  m->SetLoaded(false);
  const auto after = metrics.registry()->Collect();
  const auto* unloaded = FindMetric(after, "nnserve_model_loaded",
                                    {{"model", "digits"}, {"version", "3"}});
  ASSERT_NE(unloaded, nullptr);
  EXPECT_EQ(unloaded->gauge.value, 0);
}

TEST(ServerMetricsTest, LayerTimingOffRecordsNoLayerSamples) {
  ServerMetrics metrics("0.1.0");
  std::shared_ptr<ModelVersionMetrics> m =
      metrics.ForModelVersion("m", 1, {"a"});
  m->RecordInference(1e-5, 1, {});
  const auto families = metrics.registry()->Collect();
  const auto* layer =
      FindMetric(families, "nnserve_layer_duration_seconds",
                 {{"model", "m"}, {"version", "1"}, {"layer", "a"}});
  ASSERT_NE(layer, nullptr);
  EXPECT_EQ(layer->histogram.sample_count, 0u);
}

TEST(ServerMetricsTest, HandlesAreCreatedOncePerKey) {
  ServerMetrics metrics("0.1.0");
  EXPECT_EQ(metrics.ForModel("a"), metrics.ForModel("a"));
  EXPECT_NE(metrics.ForModel("a"), metrics.ForModel("b"));
  EXPECT_NE(metrics.ForUnknownModel(), metrics.ForModel("a"));
  EXPECT_EQ(metrics.ForBatcher("a"), metrics.ForBatcher("a"));
  EXPECT_EQ(metrics.ForModelLoads("a"), metrics.ForModelLoads("a"));
  EXPECT_NE(metrics.ForModelLoads("a"), metrics.ForModelLoads("b"));
}

// The number of series of `name` whose labels include `labels`.
int CountSeries(const std::vector<prometheus::MetricFamily>& families,
                const std::string& name,
                const std::map<std::string, std::string>& labels) {
  const prometheus::MetricFamily* family = FindFamily(families, name);
  if (family == nullptr) return 0;
  int count = 0;
  for (const auto& metric : family->metric) {
    int matched = 0;
    for (const auto& label : metric.label) {
      auto it = labels.find(label.name);
      if (it != labels.end() && it->second == label.value) ++matched;
    }
    count += matched == static_cast<int>(labels.size());
  }
  return count;
}

TEST(ServerMetricsTest, VersionSeriesDisappearWithTheirLastHandle) {
  ServerMetrics metrics("0.1.0");
  const std::map<std::string, std::string> v1 = {{"model", "m"},
                                                 {"version", "1"}};
  auto handle = metrics.ForModelVersion("m", 1, {"a", "b"});
  auto other = metrics.ForModelVersion("m", 2, {"a"});
  handle->SetLoaded(true);
  handle->RecordInference(1e-5, 3, std::vector<double>{1e-6, 1e-6});
  auto families = metrics.registry()->Collect();
  EXPECT_EQ(CountSeries(families, "nnserve_inference_duration_seconds", v1), 1);
  EXPECT_EQ(CountSeries(families, "nnserve_layer_duration_seconds", v1), 2);
  EXPECT_EQ(CountSeries(families, "nnserve_inference_rows_total", v1), 1);
  EXPECT_EQ(CountSeries(families, "nnserve_model_loaded", v1), 1);

  handle.reset();
  families = metrics.registry()->Collect();
  for (const std::string name :
       {"nnserve_inference_duration_seconds", "nnserve_layer_duration_seconds",
        "nnserve_inference_rows_total", "nnserve_model_loaded"}) {
    EXPECT_EQ(CountSeries(families, name, v1), 0) << name;
  }
  // Other versions keep theirs.
  EXPECT_EQ(CountSeries(families, "nnserve_model_loaded",
                        {{"model", "m"}, {"version", "2"}}),
            1);
  EXPECT_EQ(CountSeries(families, "nnserve_layer_duration_seconds",
                        {{"model", "m"}, {"version", "2"}}),
            1);
}

TEST(ServerMetricsTest, PrecisionDeviationPerLayerGoesWithTheVersion) {
  ServerMetrics metrics("0.1.0");
  auto reduced = metrics.ForModelVersion("m", 1, {"a", "b"},
                                         std::vector<double>{0.001, 0.02});
  auto fp32 = metrics.ForModelVersion("m", 2, {"a", "b"});
  auto families = metrics.registry()->Collect();
  const auto* a =
      FindMetric(families, "nnserve_precision_deviation",
                 {{"model", "m"}, {"version", "1"}, {"layer", "a"}});
  const auto* b =
      FindMetric(families, "nnserve_precision_deviation",
                 {{"model", "m"}, {"version", "1"}, {"layer", "b"}});
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  EXPECT_DOUBLE_EQ(a->gauge.value, 0.001);
  EXPECT_DOUBLE_EQ(b->gauge.value, 0.02);
  // An FP32 version has no deviation series.
  EXPECT_EQ(CountSeries(families, "nnserve_precision_deviation",
                        {{"model", "m"}, {"version", "2"}}),
            0);
  reduced.reset();
  EXPECT_EQ(CountSeries(metrics.registry()->Collect(),
                        "nnserve_precision_deviation", {{"model", "m"}}),
            0);
}

// A version reloaded while its old instance still serves: both handles
// share the series, and releasing the old one leaves the new one's intact
// (values included); a series only the old one had (a layer the new
// version no longer has) goes with it.
TEST(ServerMetricsTest, ReloadedVersionKeepsItsSeriesWhenTheOldOneGoes) {
  ServerMetrics metrics("0.1.0");
  const std::map<std::string, std::string> labels = {{"model", "m"},
                                                     {"version", "3"}};
  auto old_handle = metrics.ForModelVersion("m", 3, {"a", "gone"});
  old_handle->SetLoaded(true);
  old_handle->RecordInference(1e-5, 2, {});
  auto new_handle = metrics.ForModelVersion("m", 3, {"a"});
  new_handle->SetLoaded(true);
  new_handle->RecordInference(1e-5, 5, {});
  old_handle.reset();

  const auto families = metrics.registry()->Collect();
  const auto* rows =
      FindMetric(families, "nnserve_inference_rows_total", labels);
  ASSERT_NE(rows, nullptr);
  EXPECT_EQ(rows->counter.value, 7);
  const auto* loaded = FindMetric(families, "nnserve_model_loaded", labels);
  ASSERT_NE(loaded, nullptr);
  EXPECT_EQ(loaded->gauge.value, 1);
  EXPECT_EQ(CountSeries(families, "nnserve_layer_duration_seconds",
                        {{"model", "m"}, {"version", "3"}, {"layer", "a"}}),
            1);
  EXPECT_EQ(CountSeries(families, "nnserve_layer_duration_seconds",
                        {{"model", "m"}, {"version", "3"}, {"layer", "gone"}}),
            0);

  // Series come back, starting from zero, for a later handle.
  new_handle.reset();
  EXPECT_EQ(CountSeries(metrics.registry()->Collect(), "nnserve_model_loaded",
                        labels),
            0);
  auto again = metrics.ForModelVersion("m", 3, {});
  const auto fresh_families = metrics.registry()->Collect();
  const auto* fresh =
      FindMetric(fresh_families, "nnserve_inference_rows_total", labels);
  ASSERT_NE(fresh, nullptr);
  EXPECT_EQ(fresh->counter.value, 0);
}

TEST(ServerMetricsTest, LoadsAreTimedAndCountedByResult) {
  ServerMetrics metrics("0.1.0");
  ModelLoadMetrics* loads = metrics.ForModelLoads("digits");
  loads->RecordLoad(0.25, true);
  loads->RecordLoad(0.5, true);
  loads->RecordLoad(0.01, false);
  const auto families = metrics.registry()->Collect();
  const auto* duration = FindMetric(
      families, "nnserve_model_load_duration_seconds", {{"model", "digits"}});
  ASSERT_NE(duration, nullptr);
  EXPECT_EQ(duration->histogram.sample_count, 3u);
  EXPECT_NEAR(duration->histogram.sample_sum, 0.76, 1e-9);
  const auto* success =
      FindMetric(families, "nnserve_model_loads_total",
                 {{"model", "digits"}, {"result", "success"}});
  const auto* failure =
      FindMetric(families, "nnserve_model_loads_total",
                 {{"model", "digits"}, {"result", "failure"}});
  ASSERT_NE(success, nullptr);
  ASSERT_NE(failure, nullptr);
  EXPECT_EQ(success->counter.value, 2);
  EXPECT_EQ(failure->counter.value, 1);
}

TEST(ServerMetricsTest, RequestsAreCountedByModelMethodAndCode) {
  ServerMetrics metrics("0.1.0");
  RequestMetrics* digits = metrics.ForModel("digits");
  digits->Record(Method::kPredict, grpc::StatusCode::OK, 1e-4);
  digits->Record(Method::kPredict, grpc::StatusCode::OK, 2e-4);
  digits->Record(Method::kPredict, grpc::StatusCode::INVALID_ARGUMENT, 1e-5);
  digits->Record(Method::kModelInfo, grpc::StatusCode::OK, 1e-5);
  metrics.ForUnknownModel()->Record(Method::kPredict,
                                    grpc::StatusCode::NOT_FOUND, 1e-5);
  metrics.ForAllModels()->Record(Method::kListModels, grpc::StatusCode::OK,
                                 1e-5);

  const auto families = metrics.registry()->Collect();
  const auto count = [&](std::map<std::string, std::string> labels) {
    const auto* m = FindMetric(families, "nnserve_requests_total", labels);
    return m == nullptr ? -1.0 : m->counter.value;
  };
  EXPECT_EQ(count({{"model", "digits"}, {"method", "Predict"}, {"code", "OK"}}),
            2);
  EXPECT_EQ(count({{"model", "digits"},
                   {"method", "Predict"},
                   {"code", "INVALID_ARGUMENT"}}),
            1);
  EXPECT_EQ(
      count({{"model", "digits"}, {"method", "ModelInfo"}, {"code", "OK"}}), 1);
  EXPECT_EQ(count({{"model", "_unknown"},
                   {"method", "Predict"},
                   {"code", "NOT_FOUND"}}),
            1);
  EXPECT_EQ(
      count({{"model", "_all"}, {"method", "ListModels"}, {"code", "OK"}}), 1);
  // Series that make no sense are not pre-created.
  EXPECT_EQ(
      count({{"model", "digits"}, {"method", "ListModels"}, {"code", "OK"}}),
      -1);
  EXPECT_EQ(count({{"model", "_all"}, {"method", "Predict"}, {"code", "OK"}}),
            -1);

  const auto* duration =
      FindMetric(families, "nnserve_request_duration_seconds",
                 {{"model", "digits"}, {"method", "Predict"}});
  ASSERT_NE(duration, nullptr);
  EXPECT_EQ(duration->histogram.sample_count, 3u);
}

TEST(ServerMetricsTest, TextExpositionHasEveryContractSeries) {
  ServerMetrics metrics("0.1.0");
  auto version = metrics.ForModelVersion("digits", 1, {"hidden"});
  version->RecordInference(1e-5, 1, std::vector<double>{1e-6});
  metrics.ForModelLoads("digits")->RecordLoad(0.1, true);
  metrics.ForModel("digits")->Record(Method::kPredict, grpc::StatusCode::OK,
                                     1e-4);
  const std::string text = Serialize(metrics.registry()->Collect());
  for (const std::string line :
       {"# TYPE nnserve_layer_duration_seconds histogram",
        "# TYPE nnserve_inference_duration_seconds histogram",
        "# TYPE nnserve_request_duration_seconds histogram",
        "# TYPE nnserve_requests_total counter",
        "# TYPE nnserve_inference_rows_total counter",
        "# TYPE nnserve_model_loaded gauge", "# TYPE nnserve_build_info gauge",
        "# TYPE nnserve_model_load_duration_seconds histogram",
        "# TYPE nnserve_model_loads_total counter",
        "nnserve_model_loads_total{model=\"digits\",result=\"success\"} 1",
        "nnserve_requests_total{code=\"OK\",method=\"Predict\",model="
        "\"digits\"} 1",
        "nnserve_layer_duration_seconds_bucket{layer=\"hidden\",model="
        "\"digits\",version=\"1\",le=\"1e-06\"} 1"}) {
    EXPECT_THAT(text, HasSubstr(line));
  }
  EXPECT_THAT(text, Not(HasSubstr("_total_total")));
}

TEST(ProcessCollectorTest, ReportsStandardProcessMetrics) {
  ProcessCollector collector;
  const auto families = collector.Collect();
  const auto value = [&](const std::string& name) {
    const auto* family = FindFamily(families, name);
    EXPECT_NE(family, nullptr) << name;
    if (family == nullptr || family->metric.size() != 1) return -1.0;
    return family->type == prometheus::MetricType::Counter
               ? family->metric[0].counter.value
               : family->metric[0].gauge.value;
  };
  EXPECT_GT(value("process_resident_memory_bytes"), 1 << 20);
  EXPECT_GE(value("process_virtual_memory_bytes"),
            value("process_resident_memory_bytes"));
  EXPECT_GE(value("process_cpu_seconds_total"), 0);
  const double start = value("process_start_time_seconds");
  const double now = static_cast<double>(std::time(nullptr));
  EXPECT_LE(start, now + 1);
  EXPECT_GT(start, now - 24 * 3600.0);  // This test process began recently.
  EXPECT_GE(value("process_open_fds"), 3);
  EXPECT_EQ(FindFamily(families, "process_cpu_seconds_total")->type,
            prometheus::MetricType::Counter);
}

// promtool (the Prometheus package) validates the exposition format and
// naming conventions; the scrape served by the Exposer uses the same
// TextSerializer.
TEST(ExpositionTest, PromtoolAcceptsTheScrape) {
  const std::filesystem::path promtool = "/usr/bin/promtool";
  if (!std::filesystem::exists(promtool)) {
    GTEST_SKIP() << "promtool not installed";
  }
  ServerMetrics metrics("0.1.0");
  auto version = metrics.ForModelVersion("digits", 1, {"hidden", "output"});
  version->RecordInference(1e-5, 2, std::vector<double>{1e-6, 2e-6});
  metrics.ForModelLoads("digits")->RecordLoad(0.1, false);
  metrics.ForModel("digits")->Record(Method::kPredict,
                                     grpc::StatusCode::INVALID_ARGUMENT, 1e-4);
  auto families = metrics.registry()->Collect();
  for (auto& f : ProcessCollector().Collect()) families.push_back(f);

  const std::filesystem::path file =
      std::filesystem::temp_directory_path() /
      ("nnserve_metrics_test_" + std::to_string(::getpid()) + ".txt");
  {
    std::ofstream out(file);
    out << Serialize(families);
  }
  const std::string command =
      promtool.string() + " check metrics < " + file.string() + " 2>&1";
  FILE* pipe = ::popen(command.c_str(), "r");
  ASSERT_NE(pipe, nullptr);
  std::string output;
  char buffer[256];
  while (std::fgets(buffer, sizeof buffer, pipe)) output += buffer;
  const int rc = ::pclose(pipe);
  std::filesystem::remove(file);
  EXPECT_EQ(rc, 0) << output;
  EXPECT_EQ(output, "");
}

}  // namespace
}  // namespace nnserve::server
