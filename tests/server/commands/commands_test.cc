// Tests of the offline commands behind `nnserve inspect` and `nnserve run`.
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "formats/npy.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/commands/inspect_command.h"
#include "server/commands/run_command.h"
#include "tests/util/model_builder.h"
#include "tests/util/reference.h"

namespace nnserve::server {
namespace {

using nnserve::testing::BuildRandomModel;
using nnserve::testing::FileFormat;
using nnserve::testing::RandomModel;
using nnserve::testing::ScopedTempDir;
using ::testing::HasSubstr;

class CommandsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    model_ = BuildRandomModel("tiny", 3,
                              {{4, engine::Activation::kLeakyRelu, true, 0.2f},
                               {2, engine::Activation::kSoftmax, false}},
                              engine::WeightLayout::kInOut, 5);
    model_.config.mutable_output()->add_labels("no");
    model_.config.mutable_output()->add_labels("yes");
    model_dir_ = nnserve::testing::WriteModelDir(
        repo_.path(), model_, 2, FileFormat::kNpy, formats::DType::kF32);
  }

  ScopedTempDir repo_{"commands_test"};
  RandomModel model_;
  std::filesystem::path model_dir_;
};

TEST_F(CommandsTest, InspectPrintsTheLayerTableAndTotals) {
  std::ostringstream out;
  ASSERT_TRUE(RunInspect(model_dir_, 0, out).ok());
  const std::string text = out.str();
  EXPECT_THAT(text, HasSubstr("model tiny version 2"));
  EXPECT_THAT(text, HasSubstr("input  'x' [3]"));
  EXPECT_THAT(text, HasSubstr("labels: no,yes"));
  EXPECT_THAT(text, HasSubstr("weight layout on disk: IN_OUT"));
  // fc0: 3*4 weights + 4 biases = 16; fc1: 4*2 weights, no bias = 8.
  EXPECT_THAT(text, HasSubstr("3->4"));
  EXPECT_THAT(text, HasSubstr("LEAKY_RELU(0.2)"));
  EXPECT_THAT(text, HasSubstr("4->2"));
  EXPECT_THAT(text, HasSubstr("(no bias)"));
  EXPECT_THAT(text, HasSubstr("total parameters: 24"));
  EXPECT_THAT(text, HasSubstr("weight bytes (f32): 96"));
  std::vector<std::string> lines = absl::StrSplit(text, '\n');
  int fc0_lines = 0;
  for (const std::string& line : lines) {
    if (line.starts_with("fc0 ") && line.find("->") != std::string::npos) {
      ++fc0_lines;
      EXPECT_THAT(line, HasSubstr(" 16 "));
    }
  }
  EXPECT_EQ(fc0_lines, 1);
}

TEST_F(CommandsTest, InspectOfABadModelReturnsTheValidationError) {
  std::filesystem::remove(model_dir_ / "2" / "fc0.bias.npy");
  std::ostringstream out;
  absl::Status status = RunInspect(model_dir_, 0, out);
  ASSERT_FALSE(status.ok());
  EXPECT_THAT(std::string(status.message()), HasSubstr("fc0.bias"));
  EXPECT_EQ(out.str(), "");
}

TEST_F(CommandsTest, InspectOfAMissingVersionFails) {
  std::ostringstream out;
  EXPECT_FALSE(RunInspect(model_dir_, 9, out).ok());
}

TEST_F(CommandsTest, RunReadsCsvFromStdinAndWritesNpyMatchingTheReference) {
  const std::vector<float> x = {0.5f, -1.0f, 2.0f, 0.0f, 0.25f, -0.75f};
  std::istringstream in("0.5,-1,2\n0,0.25,-0.75\n");
  std::ostringstream out;
  RunOptions options;
  options.model_dir = model_dir_;
  options.input = "-";
  options.output = (repo_.path() / "y.npy").string();
  absl::Status status = RunOffline(options, in, out);
  ASSERT_TRUE(status.ok()) << status;

  const std::vector<double> expected =
      nnserve::testing::ReferenceForward(model_.config, model_.tensors, x, 2);
  std::ifstream file(options.output, std::ios::binary);
  const std::string bytes{std::istreambuf_iterator<char>(file),
                          std::istreambuf_iterator<char>()};
  auto y = formats::ParseNpy(bytes, options.output);
  ASSERT_TRUE(y.ok()) << y.status();
  EXPECT_EQ(y->shape, (std::vector<int64_t>{2, 2}));
  EXPECT_LE(nnserve::testing::MaxRowRelativeError(y->values, expected, 2),
            1e-5);

  // One line per row, with the argmax label.
  std::vector<std::string> lines =
      absl::StrSplit(out.str(), '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 2u);
  for (int r = 0; r < 2; ++r) {
    const int best = expected[r * 2 + 1] > expected[r * 2] ? 1 : 0;
    EXPECT_THAT(lines[r], HasSubstr(absl::StrCat("row ", r, ": [")));
    EXPECT_THAT(lines[r], HasSubstr(absl::StrCat("label=", best ? "yes" : "no",
                                                 " class=", best)));
  }
}

TEST_F(CommandsTest, RunReadsAnNpyInputFile) {
  const std::vector<float> x = {1, 2, 3};
  const auto path = repo_.path() / "x.npy";
  std::ofstream(path, std::ios::binary) << formats::SerializeNpy({3}, x);
  std::istringstream in;
  std::ostringstream out;
  RunOptions options;
  options.model_dir = model_dir_;
  options.input = path.string();
  ASSERT_TRUE(RunOffline(options, in, out).ok());
  EXPECT_THAT(out.str(), HasSubstr("row 0: ["));
  EXPECT_THAT(out.str(), ::testing::Not(HasSubstr("row 1")));
}

TEST_F(CommandsTest, RunRefusesRowsOfTheWrongWidth) {
  std::istringstream in("1,2\n");
  std::ostringstream out;
  RunOptions options;
  options.model_dir = model_dir_;
  absl::Status status = RunOffline(options, in, out);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(status.message()),
              HasSubstr("2 features per row (shape [1, 2]); expected 3"));
}

TEST_F(CommandsTest, RunRefusesNonFiniteInputNamingRowAndColumn) {
  // CSV text: the shared CSV reader refuses NaN, naming line and column.
  std::istringstream in("1,2,3\n4,nan,6\n");
  std::ostringstream out;
  RunOptions options;
  options.model_dir = model_dir_;
  absl::Status status = RunOffline(options, in, out);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(status.message()),
              HasSubstr("stdin: csv: line 2 column 2: 'nan' is not finite"));

  // A .npy file carries NaN through; the input check the server also
  // applies refuses it (0-based row and column).
  const auto path = repo_.path() / "nan.npy";
  std::ofstream(path, std::ios::binary) << formats::SerializeNpy(
      {2, 3}, std::vector<float>{1, 2, 3, 4, std::nanf(""), 6});
  options.input = path.string();
  status = RunOffline(options, in, out);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(status.message()),
              HasSubstr("row 1 column 1 is NaN"));
}

TEST_F(CommandsTest, InspectShowsPrecisionAndKernels) {
  std::ostringstream out;
  ASSERT_TRUE(RunInspect(model_dir_, 0, out).ok());
  const std::string text = out.str();
  EXPECT_THAT(text, HasSubstr("\nprecision: FP32 on oneDNN ISA "));
  EXPECT_THAT(text, ::testing::Not(HasSubstr("deviation from FP32")));
  // One kernel line per layer, naming oneDNN's implementation.
  std::vector<std::string> lines = absl::StrSplit(text, '\n');
  int kernel_lines = 0;
  for (const std::string& line : lines) {
    if ((line.starts_with("fc0  ") || line.starts_with("fc1  ")) &&
        line.find(':') != std::string::npos &&
        line.find("->") == std::string::npos) {
      ++kernel_lines;
    }
  }
  EXPECT_EQ(kernel_lines, 2) << text;
}

bool Native(engine::Precision precision) {
  return engine::DetectedPrecisionSupport().Supports(precision);
}

TEST_F(CommandsTest, InspectWithPrecisionShowsTheDeviationTable) {
  if (!Native(engine::Precision::kInt8)) GTEST_SKIP() << "no native INT8";
  std::ostringstream out;
  absl::Status status = RunInspect(model_dir_, 0, out, "int8");
  ASSERT_TRUE(status.ok()) << status;
  const std::string text = out.str();
  EXPECT_THAT(text, HasSubstr("precision: INT8 on oneDNN ISA"));
  EXPECT_THAT(text, HasSubstr("deviation from FP32 of each layer's output on "
                              "the probe batch (generated"));
  EXPECT_THAT(text, HasSubstr("64 rows); max_precision_deviation: none"));
  EXPECT_THAT(text, HasSubstr("max_abs"));
  EXPECT_THAT(text, HasSubstr("rel_l2"));
  std::vector<std::string> lines = absl::StrSplit(text, '\n');
  int rows = 0;
  for (const std::string& line : lines) {
    if ((line.starts_with("fc0 ") || line.starts_with("fc1 ")) &&
        line.find(" brg:") != std::string::npos) {
      ++rows;
      EXPECT_THAT(line,
                  ::testing::ContainsRegex("[0-9]\\.[0-9]{3}e[-+][0-9]+ +"
                                           "[0-9]\\.[0-9]{3}e[-+][0-9]+$"));
    }
  }
  EXPECT_EQ(rows, 2) << text;
}

TEST_F(CommandsTest, InspectRefusesAModelOverItsDeviationLimit) {
  if (!Native(engine::Precision::kBf16)) GTEST_SKIP() << "no native BF16";
  std::string config;
  {
    std::ifstream file(model_dir_ / "config.pbtxt");
    config.assign(std::istreambuf_iterator<char>(file),
                  std::istreambuf_iterator<char>());
  }
  std::ofstream(model_dir_ / "config.pbtxt")
      << config << "\nprecision: BF16\nmax_precision_deviation: 1e-9\n";
  std::ostringstream out;
  absl::Status status = RunInspect(model_dir_, 0, out);
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(status.message()), HasSubstr("layer 'fc0'"));
  EXPECT_THAT(std::string(status.message()),
              HasSubstr("above max_precision_deviation 1e-09"));
  EXPECT_EQ(out.str(), "");
}

TEST(PrintModelReportTest, FallbackIsAWarning) {
  engine::ModelInfo info;
  info.name = "m";
  info.precision.requested = engine::Precision::kBf16;
  info.precision.effective = engine::Precision::kFp32;
  info.precision.isa = "avx2";
  info.precision.fallback_reason = "BF16 requested, but no; running FP32";
  info.precision.layers.push_back({"dense", "gemm:jit", 0, 0});
  std::ostringstream out;
  PrintModelReport(info, out);
  EXPECT_THAT(out.str(),
              HasSubstr("precision: FP32 (requested BF16) on oneDNN ISA avx2\n"
                        "warning: BF16 requested, but no; running FP32\n"
                        "layer  kernel\n"
                        "dense  gemm:jit\n"));
}

TEST_F(CommandsTest, RunWithPrecisionSaysSoAndStaysNearTheReference) {
  if (!Native(engine::Precision::kInt8)) GTEST_SKIP() << "no native INT8";
  const std::vector<float> x = {0.5f, -1.0f, 2.0f, 0.0f, 0.25f, -0.75f};
  std::istringstream in("0.5,-1,2\n0,0.25,-0.75\n");
  std::ostringstream out;
  RunOptions options;
  options.model_dir = model_dir_;
  options.precision = "INT8";
  options.output = (repo_.path() / "y8.npy").string();
  absl::Status status = RunOffline(options, in, out);
  ASSERT_TRUE(status.ok()) << status;
  std::vector<std::string> lines =
      absl::StrSplit(out.str(), '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 3u) << out.str();
  EXPECT_THAT(lines[0], HasSubstr("# precision INT8 (requested INT8); largest "
                                  "deviation from FP32 on the probe batch: "
                                  "relative L2 "));
  EXPECT_THAT(lines[1], HasSubstr("row 0: ["));

  const std::vector<double> expected =
      nnserve::testing::ReferenceForward(model_.config, model_.tensors, x, 2);
  std::ifstream file(options.output, std::ios::binary);
  const std::string bytes{std::istreambuf_iterator<char>(file),
                          std::istreambuf_iterator<char>()};
  auto y = formats::ParseNpy(bytes, options.output);
  ASSERT_TRUE(y.ok()) << y.status();
  EXPECT_LE(nnserve::testing::MaxRowRelativeError(y->values, expected, 2),
            5e-2);
}

TEST_F(CommandsTest, RunRefusesAnUnknownPrecision) {
  std::istringstream in("1,2,3\n");
  std::ostringstream out;
  RunOptions options;
  options.model_dir = model_dir_;
  options.precision = "fp16";
  absl::Status status = RunOffline(options, in, out);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(status.message()),
              HasSubstr("--precision is 'fp16', expected fp32, bf16 or int8"));
}

}  // namespace
}  // namespace nnserve::server
