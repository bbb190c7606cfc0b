// /metrics of the real nnserve binary after a known sequence of calls:
// per-layer histograms for every layer with _count equal to the forward
// passes made (the start-up warm-up pass is not recorded: ModelManager runs
// it on the engine Model directly, without metrics), inference/request
// histograms and counters by code, model_loaded, build_info, process
// metrics; and `promtool check metrics` accepts the scrape.
#include <stdio.h>
#include <sys/wait.h>

#include <chrono>
#include <cstdint>
#include <ctime>
#include <fstream>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/server/integration/integration_fixture.h"
#include "tests/util/loopback_http.h"

namespace nnserve::testing {
namespace {

using engine::Activation;
using engine::WeightLayout;
using ::testing::HasSubstr;
using Labels = std::map<std::string, std::string>;

// One sample line of the Prometheus text format.
struct Sample {
  std::string name;
  Labels labels;
  double value = 0;
};

// Parses `name{k="v",...} value` lines; skips comments and blank lines.
// Label values in this server never contain escaped quotes.
std::vector<Sample> ParseSamples(const std::string& text) {
  std::vector<Sample> samples;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    if (line.empty() || line[0] == '#') continue;
    Sample sample;
    const size_t brace = line.find('{');
    const size_t space = line.rfind(' ');
    if (space == absl::string_view::npos) continue;
    if (brace != absl::string_view::npos && brace < space) {
      sample.name = std::string(line.substr(0, brace));
      const size_t close = line.rfind('}');
      absl::string_view body = line.substr(brace + 1, close - brace - 1);
      for (absl::string_view pair :
           absl::StrSplit(body, "\",", absl::SkipEmpty())) {
        const size_t eq = pair.find("=\"");
        if (eq == absl::string_view::npos) continue;
        absl::string_view value = pair.substr(eq + 2);
        if (!value.empty() && value.back() == '"') value.remove_suffix(1);
        sample.labels[std::string(pair.substr(0, eq))] = std::string(value);
      }
    } else {
      sample.name = std::string(line.substr(0, space));
    }
    sample.value = std::stod(std::string(line.substr(space + 1)));
    samples.push_back(std::move(sample));
  }
  return samples;
}

// The value of the one sample named `name` whose labels include `labels`.
std::optional<double> Value(const std::vector<Sample>& samples,
                            const std::string& name, const Labels& labels) {
  std::optional<double> found;
  for (const Sample& s : samples) {
    if (s.name != name) continue;
    bool match = true;
    for (const auto& [k, v] : labels) {
      auto it = s.labels.find(k);
      if (it == s.labels.end() || it->second != v) match = false;
    }
    if (!match) continue;
    if (found.has_value()) {
      ADD_FAILURE() << "several " << name << " samples match the labels";
    }
    found = s.value;
  }
  return found;
}

// Runs `promtool check metrics` on `text`; returns its exit code and output.
std::pair<int, std::string> PromtoolCheck(const std::string& text,
                                          const std::filesystem::path& dir) {
  const std::filesystem::path input = dir / "scrape.txt";
  const std::filesystem::path output = dir / "promtool.txt";
  std::ofstream(input) << text;
  const std::string command =
      absl::StrCat("/usr/bin/promtool check metrics < '", input.string(),
                   "' > '", output.string(), "' 2>&1");
  const int status = std::system(command.c_str());
  std::ifstream in(output);
  std::string out((std::istreambuf_iterator<char>(in)),
                  std::istreambuf_iterator<char>());
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

TEST(MetricsIntegrationTest, ScrapeCountsEveryForwardPassAndPassesPromtool) {
  ScopedTempDir repo("nnserve_metrics_itest");
  const RandomModel m1 = BuildRandomModel(
      "m1", 8,
      {LayerDef(6, Activation::kRelu), LayerDef(3, Activation::kSoftmax)},
      WeightLayout::kOutIn, 1);
  const RandomModel m2 = BuildRandomModel(
      "m2", 5,
      {LayerDef(7, Activation::kTanh), LayerDef(4, Activation::kSigmoid),
       LayerDef(2, Activation::kIdentity)},
      WeightLayout::kInOut, 2);
  WriteModelDir(repo.path(), m1, 1, FileFormat::kSafetensors,
                formats::DType::kF32);
  WriteModelDir(repo.path(), m2, 2, FileFormat::kNpy, formats::DType::kF32);
  ServerOptions options;
  options.model_repository = repo.path();
  absl::StatusOr<RunningServer> server = StartServer(options);
  ASSERT_TRUE(server.ok()) << server.status();
  const Client& client = *server->client;

  // Known traffic: 7 good + 3 bad Predicts on m1, 5 good on m2 (with 1..5
  // rows), 2 on an unknown model, 1 ModelInfo, 1 ListModels.
  int64_t m1_rows = 0, m2_rows = 0;
  for (int i = 0; i < 7; ++i) {
    auto request =
        MakePredictRequest("m1", 0, RandomRows(i + 1, 8, i), Encoding::kValues);
    ASSERT_TRUE(client.Predict(*request).ok());
    m1_rows += i + 1;
  }
  for (int i = 0; i < 5; ++i) {
    auto request =
        MakePredictRequest("m2", 2, RandomRows(i + 1, 5, i), Encoding::kRaw);
    ASSERT_TRUE(client.Predict(*request).ok());
    m2_rows += i + 1;
  }
  for (int i = 0; i < 3; ++i) {
    auto request =
        MakePredictRequest("m1", 0, RandomRows(1, 9, i), Encoding::kValues);
    ASSERT_EQ(client.Predict(*request).status().code(),
              absl::StatusCode::kInvalidArgument);
  }
  for (int i = 0; i < 2; ++i) {
    auto request =
        MakePredictRequest("ghost", 0, RandomRows(1, 8, i), Encoding::kValues);
    ASSERT_EQ(client.Predict(*request).status().code(),
              absl::StatusCode::kNotFound);
  }
  ASSERT_TRUE(client.ModelInfo("m1").ok());
  ASSERT_TRUE(client.ListModels().ok());

  absl::StatusOr<HttpResponse> scrape =
      HttpGet(server->process->metrics_port(), "/metrics");
  ASSERT_TRUE(scrape.ok()) << scrape.status();
  ASSERT_EQ(scrape->status_code, 200);
  const std::string& text = scrape->body;
  const std::vector<Sample> samples = ParseSamples(text);

  for (const char* family :
       {"nnserve_layer_duration_seconds", "nnserve_inference_duration_seconds",
        "nnserve_request_duration_seconds"}) {
    EXPECT_THAT(text, HasSubstr(absl::StrCat("# TYPE ", family, " histogram")));
  }
  EXPECT_THAT(text, HasSubstr("# TYPE nnserve_requests_total counter"));
  EXPECT_THAT(text, HasSubstr("# TYPE nnserve_inference_rows_total counter"));
  EXPECT_THAT(text, HasSubstr("# TYPE nnserve_model_loaded gauge"));

  // Per layer: one histogram per layer of each served version, counting
  // exactly the forward passes made above.
  for (const auto& [model, version, passes] :
       {std::tuple{&m1, "1", 7}, std::tuple{&m2, "2", 5}}) {
    const std::string name = model->config.name();
    for (const v1::LayerConfig& layer : model->config.layers()) {
      SCOPED_TRACE(absl::StrCat(name, " v", version, " ", layer.name()));
      const Labels labels = {
          {"model", name}, {"version", version}, {"layer", layer.name()}};
      EXPECT_EQ(Value(samples, "nnserve_layer_duration_seconds_count", labels),
                passes);
      Labels inf = labels;
      inf["le"] = "+Inf";
      EXPECT_EQ(Value(samples, "nnserve_layer_duration_seconds_bucket", inf),
                passes);
      const std::optional<double> sum =
          Value(samples, "nnserve_layer_duration_seconds_sum", labels);
      ASSERT_TRUE(sum.has_value());
      EXPECT_GT(*sum, 0);
    }
    const Labels labels = {{"model", name}, {"version", version}};
    EXPECT_EQ(
        Value(samples, "nnserve_inference_duration_seconds_count", labels),
        passes);
    EXPECT_EQ(Value(samples, "nnserve_model_loaded", labels), 1);
  }
  EXPECT_EQ(Value(samples, "nnserve_inference_rows_total",
                  {{"model", "m1"}, {"version", "1"}}),
            m1_rows);
  EXPECT_EQ(Value(samples, "nnserve_inference_rows_total",
                  {{"model", "m2"}, {"version", "2"}}),
            m2_rows);

  // Requests by model, method and code.
  auto requests = [&](const std::string& model, const std::string& method,
                      const std::string& code) {
    return Value(samples, "nnserve_requests_total",
                 {{"model", model}, {"method", method}, {"code", code}});
  };
  EXPECT_EQ(requests("m1", "Predict", "OK"), 7);
  EXPECT_EQ(requests("m1", "Predict", "INVALID_ARGUMENT"), 3);
  EXPECT_EQ(requests("m2", "Predict", "OK"), 5);
  EXPECT_EQ(requests("m1", "ModelInfo", "OK"), 1);
  EXPECT_EQ(Value(samples, "nnserve_request_duration_seconds_count",
                  {{"model", "m1"}, {"method", "Predict"}}),
            10);
  // The unknown model is counted under a fixed label, never the caller's
  // string (bounded cardinality).
  double unknown_not_found = 0;
  for (const Sample& s : samples) {
    if (s.name != "nnserve_requests_total") continue;
    EXPECT_NE(s.labels.at("model"), "ghost");
    if (s.labels.at("model") != "m1" && s.labels.at("model") != "m2" &&
        s.labels.at("method") == "Predict" &&
        s.labels.at("code") == "NOT_FOUND") {
      unknown_not_found += s.value;
    }
  }
  EXPECT_EQ(unknown_not_found, 2);
  double list_models = 0;
  for (const Sample& s : samples) {
    if (s.name == "nnserve_requests_total" &&
        s.labels.at("method") == "ListModels" && s.labels.at("code") == "OK") {
      list_models += s.value;
    }
  }
  EXPECT_EQ(list_models, 1);

  // Build and process metrics.
  bool build_info = false;
  for (const Sample& s : samples) {
    if (s.name == "nnserve_build_info") {
      build_info = s.value == 1 && s.labels.count("version") == 1;
    }
  }
  EXPECT_TRUE(build_info) << "no nnserve_build_info{version=...} 1";
  const std::optional<double> rss =
      Value(samples, "process_resident_memory_bytes", {});
  ASSERT_TRUE(rss.has_value());
  EXPECT_GT(*rss, 1 << 20);
  const std::optional<double> cpu =
      Value(samples, "process_cpu_seconds_total", {});
  ASSERT_TRUE(cpu.has_value());
  EXPECT_GE(*cpu, 0);  // Clock-tick resolution: may still read 0.00.
  const std::optional<double> start =
      Value(samples, "process_start_time_seconds", {});
  ASSERT_TRUE(start.has_value());
  // A Unix time no later than now and after 2020-01-01.
  EXPECT_GT(*start, 1577836800);
  EXPECT_LE(*start, static_cast<double>(std::time(nullptr)) + 1);

  const auto [code, output] = PromtoolCheck(text, repo.path());
  EXPECT_EQ(code, 0) << "promtool check metrics:\n" << output;
}

}  // namespace
}  // namespace nnserve::testing
