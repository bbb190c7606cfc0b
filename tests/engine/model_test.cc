// Tests for Model (engine/model.h): oneDNN forward passes against the
// plain-loop reference (tests/util/reference.h) on random models.
//
// Error measure (see MaxRowRelativeError): per row, the largest absolute
// difference divided by the row's largest |expected| (floored at 1e-6);
// the maximum over rows must be <= 1e-5. f32 accumulation over a few hundred
// terms stays ~1e-6 under this measure, while a genuinely wrong value (wrong
// weight, missing bias, wrong activation) is off by >1e-2.
#include "engine/model.h"

#include <cmath>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "engine/repository.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/util/model_builder.h"
#include "tests/util/reference.h"

namespace nnserve::engine {
namespace {

using formats::DType;
using formats::DTypeName;
using formats::Tensor;
using formats::TensorMap;

using ::nnserve::testing::BuildRandomModel;
using ::nnserve::testing::FileFormat;
using ::nnserve::testing::LayerDef;
using ::nnserve::testing::MaxRowRelativeError;
using ::nnserve::testing::RandomModel;
using ::nnserve::testing::RandomValues;
using ::nnserve::testing::ReferenceForward;
using ::nnserve::testing::ScopedTempDir;
using ::nnserve::testing::WriteModelDir;
using ::testing::HasSubstr;

constexpr double kTolerance = 1e-5;
const int64_t kBatchSizes[] = {1, 2, 7, 64, 1000};

std::shared_ptr<const Model> CreateModel(const RandomModel& m,
                                         EngineOptions options = {}) {
  absl::StatusOr<ModelSpec> spec = BuildModelSpec(m.config, m.tensors, "mem");
  EXPECT_TRUE(spec.ok()) << spec.status();
  if (!spec.ok()) return nullptr;
  absl::StatusOr<std::shared_ptr<const Model>> model =
      Model::Create(*std::move(spec), 1, options);
  EXPECT_TRUE(model.ok()) << model.status();
  return model.ok() ? *model : nullptr;
}

// Runs `rows` random rows through `model` and the reference; returns the
// error measure.
double ForwardError(const Model& model, const RandomModel& m, int64_t rows,
                    uint32_t seed) {
  const std::vector<float> input =
      RandomValues(static_cast<size_t>(rows * model.input_size()), 1.0f, seed);
  std::vector<float> output(static_cast<size_t>(rows * model.output_size()),
                            std::nanf(""));
  absl::Status status = model.Forward(input, rows, output);
  EXPECT_TRUE(status.ok()) << status;
  return MaxRowRelativeError(
      output, ReferenceForward(m.config, m.tensors, input, rows), rows);
}

struct ActivationCase {
  Activation activation;
  std::optional<float> alpha;
};

class ActivationTest : public ::testing::TestWithParam<
                           std::tuple<ActivationCase, WeightLayout>> {};

TEST_P(ActivationTest, MatchesReferenceForEveryBatchSize) {
  const auto [act, layout] = GetParam();
  // Odd widths exercise oneDNN's tail handling; the activation is used on
  // every layer (twice hidden, once as the output layer), one layer has no
  // bias.
  const RandomModel m =
      BuildRandomModel("act", 37,
                       {{64, act.activation, true, act.alpha},
                        {45, act.activation, false, act.alpha},
                        {10, act.activation, true, act.alpha}},
                       layout, 11);
  std::shared_ptr<const Model> model = CreateModel(m);
  ASSERT_NE(model, nullptr);
  for (int64_t rows : kBatchSizes) {
    EXPECT_LE(ForwardError(*model, m, rows, static_cast<uint32_t>(rows)),
              kTolerance)
        << "rows=" << rows;
  }
}

INSTANTIATE_TEST_SUITE_P(
    AllActivations, ActivationTest,
    ::testing::Combine(
        ::testing::Values(ActivationCase{Activation::kIdentity, {}},
                          ActivationCase{Activation::kRelu, {}},
                          ActivationCase{Activation::kLeakyRelu, {}},
                          ActivationCase{Activation::kLeakyRelu, 0.2f},
                          ActivationCase{Activation::kElu, {}},
                          ActivationCase{Activation::kElu, 0.5f},
                          ActivationCase{Activation::kSigmoid, {}},
                          ActivationCase{Activation::kTanh, {}},
                          ActivationCase{Activation::kGelu, {}},
                          ActivationCase{Activation::kSoftmax, {}}),
        ::testing::Values(WeightLayout::kOutIn, WeightLayout::kInOut)),
    [](const auto& info) {
      const ActivationCase& c = std::get<0>(info.param);
      return std::string(ActivationName(c.activation)) +
             (c.alpha ? "_alpha" : "") + "_" +
             std::string(WeightLayoutName(std::get<1>(info.param)));
    });

struct FileCase {
  FileFormat format;
  DType dtype;
};

class FileFormatTest : public ::testing::TestWithParam<FileCase> {};

// Loads a model written in every file format and dtype. For F16/BF16 the
// reference runs on the values as loaded (the rounded ones), after checking
// that they are within the dtype's rounding error of the originals.
TEST_P(FileFormatTest, LoadedModelMatchesReference) {
  const FileCase c = GetParam();
  const RandomModel m = BuildRandomModel("files", 21,
                                         {{30, Activation::kElu},
                                          {17, Activation::kSigmoid, false},
                                          {4, Activation::kSoftmax}},
                                         WeightLayout::kInOut, 12);
  ScopedTempDir dir;
  const std::filesystem::path model_dir =
      WriteModelDir(dir.path(), m, 3, c.format, c.dtype);
  absl::StatusOr<std::shared_ptr<const Model>> model =
      LoadModel(model_dir, 0, EngineOptions{});
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_EQ((*model)->info().version, 3);

  absl::StatusOr<TensorMap> loaded = ReadTensors(model_dir / "3", m.config);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  const double rounding = c.dtype == DType::kF16    ? 1.0 / 2048
                          : c.dtype == DType::kBF16 ? 1.0 / 256
                                                    : 0.0;
  ASSERT_EQ(loaded->size(), m.tensors.size());
  for (const auto& [name, tensor] : m.tensors) {
    const Tensor& got = loaded->at(name);
    ASSERT_EQ(got.shape, tensor.shape) << name;
    EXPECT_EQ(got.file_dtype, c.dtype) << name;
    for (size_t i = 0; i < tensor.values.size(); ++i) {
      ASSERT_LE(std::abs(got.values[i] - tensor.values[i]),
                rounding * std::abs(tensor.values[i]) + 1e-7)
          << name << "[" << i << "]";
    }
  }
  RandomModel as_loaded{m.config, *std::move(loaded)};
  for (int64_t rows : kBatchSizes) {
    EXPECT_LE(ForwardError(**model, as_loaded, rows, 50 + rows), kTolerance)
        << "rows=" << rows;
  }
}

INSTANTIATE_TEST_SUITE_P(
    AllFormats, FileFormatTest,
    ::testing::Values(FileCase{FileFormat::kSafetensors, DType::kF32},
                      FileCase{FileFormat::kSafetensors, DType::kF64},
                      FileCase{FileFormat::kSafetensors, DType::kF16},
                      FileCase{FileFormat::kSafetensors, DType::kBF16},
                      FileCase{FileFormat::kNpy, DType::kF32},
                      FileCase{FileFormat::kNpy, DType::kF64},
                      FileCase{FileFormat::kNpy, DType::kF16}),
    [](const auto& info) {
      return std::string(info.param.format == FileFormat::kNpy
                             ? "Npy"
                             : "Safetensors") +
             "_" + std::string(DTypeName(info.param.dtype));
    });

// The shape of the mlp-784 example: 784 -> 512 -> 512 -> 10.
RandomModel Mlp784() {
  return BuildRandomModel("mlp", 784,
                          {{512, Activation::kRelu},
                           {512, Activation::kRelu},
                           {10, Activation::kSoftmax}},
                          WeightLayout::kOutIn, 5);
}

TEST(ModelTest, WideModelMatchesReference) {
  const RandomModel m = Mlp784();
  std::shared_ptr<const Model> model = CreateModel(m, {1, {1, 64}});
  ASSERT_NE(model, nullptr);
  for (int64_t rows : {1, 3, 64, 256}) {
    EXPECT_LE(ForwardError(*model, m, rows, 100 + rows), kTolerance) << rows;
  }
}

TEST(ModelTest, BatchesLargerThanOneChunk) {
  const RandomModel m = BuildRandomModel(
      "big", 9, {{16, Activation::kTanh}, {3, Activation::kSoftmax}},
      WeightLayout::kOutIn, 6);
  std::shared_ptr<const Model> model = CreateModel(m);
  ASSERT_NE(model, nullptr);
  EXPECT_LE(ForwardError(*model, m, 2500, 1), kTolerance);
  EXPECT_LE(ForwardError(*model, m, 1024, 2), kTolerance);
  EXPECT_LE(ForwardError(*model, m, 1025, 3), kTolerance);
}

// Every batch size up to 300: sizes above 64 that are not a multiple of 64
// run as a planned multiple of 64 plus a planned remainder (300 = 256 + 44).
TEST(ModelTest, ManyDistinctBatchSizes) {
  const RandomModel m = BuildRandomModel(
      "sizes", 5, {{7, Activation::kSigmoid}, {3, Activation::kSoftmax}},
      WeightLayout::kInOut, 13);
  std::shared_ptr<const Model> model = CreateModel(m);
  ASSERT_NE(model, nullptr);
  for (int64_t rows = 1; rows <= 300; ++rows) {
    ASSERT_LE(ForwardError(*model, m, rows, 500 + rows), kTolerance) << rows;
  }
  EXPECT_LE(ForwardError(*model, m, 150, 1), kTolerance);
}

TEST(ModelTest, SubnormalWeightsStillGiveReferenceResults) {
  RandomModel m = BuildRandomModel(
      "sub", 16, {{12, Activation::kRelu}, {4, Activation::kSoftmax}},
      WeightLayout::kOutIn, 14);
  std::vector<float>& w = m.tensors["fc0.weight"].values;
  for (size_t i = 0; i < w.size(); i += 3) w[i] = (i % 2 ? 1e-40f : -3e-39f);
  for (float& b : m.tensors["fc1.bias"].values) b = 1e-40f;
  std::shared_ptr<const Model> model = CreateModel(m, {1, {1, 64}});
  ASSERT_NE(model, nullptr);
  for (int64_t rows : {1, 64}) {
    EXPECT_LE(ForwardError(*model, m, rows, 900 + rows), kTolerance) << rows;
  }
  // info() describes the values as given, not the flushed ones.
  EXPECT_EQ(model->info().layers[1].bias.max, double{1e-40f});
  EXPECT_EQ(model->info().layers[1].bias.min, double{1e-40f});
}

TEST(ModelTest, TwoIntraOpThreads) {
  const RandomModel m = Mlp784();
  std::shared_ptr<const Model> model = CreateModel(m, {2, {1, 64}});
  ASSERT_NE(model, nullptr);
  for (int64_t rows : {1, 64, 300}) {
    EXPECT_LE(ForwardError(*model, m, rows, 7 + rows), kTolerance) << rows;
  }
}

TEST(ModelTest, NoPrewarmSizes) {
  const RandomModel m = BuildRandomModel("np", 5, {{4, Activation::kRelu}},
                                         WeightLayout::kInOut, 8);
  std::shared_ptr<const Model> model = CreateModel(m, {1, {}});
  ASSERT_NE(model, nullptr);
  EXPECT_LE(ForwardError(*model, m, 3, 1), kTolerance);
}

TEST(ModelTest, ConcurrentForwardCallsAreIndependent) {
  const RandomModel m = BuildRandomModel("cc", 33,
                                         {{48, Activation::kGelu},
                                          {20, Activation::kLeakyRelu},
                                          {6, Activation::kSoftmax}},
                                         WeightLayout::kOutIn, 9);
  std::shared_ptr<const Model> model = CreateModel(m, {1, {1, 4}});
  ASSERT_NE(model, nullptr);
  constexpr int kThreads = 8;
  constexpr int kIterations = 40;
  std::vector<double> worst(kThreads, 0.0);
  std::vector<int> failures(kThreads, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937 rng(t);
      const int64_t sizes[] = {1, 2, 3, 4, 5, 17, 64, 129};
      for (int i = 0; i < kIterations; ++i) {
        const int64_t rows = sizes[rng() % 8];
        const uint32_t seed = static_cast<uint32_t>(t * 1000 + i);
        const std::vector<float> input = RandomValues(
            static_cast<size_t>(rows * model->input_size()), 1.0f, seed);
        std::vector<float> output(
            static_cast<size_t>(rows * model->output_size()));
        if (!model->Forward(input, rows, output).ok()) {
          ++failures[t];
          continue;
        }
        worst[t] = std::max(
            worst[t],
            MaxRowRelativeError(
                output, ReferenceForward(m.config, m.tensors, input, rows),
                rows));
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  for (int t = 0; t < kThreads; ++t) {
    EXPECT_EQ(failures[t], 0) << "thread " << t;
    EXPECT_LE(worst[t], kTolerance) << "thread " << t;
  }
}

TEST(ModelTest, LayerSecondsAreFilled) {
  const RandomModel m = Mlp784();
  std::shared_ptr<const Model> model = CreateModel(m);
  ASSERT_NE(model, nullptr);
  const std::vector<float> input = RandomValues(784 * 2, 1.0f, 1);
  std::vector<float> output(20);
  std::vector<double> seconds(3, -1.0);
  ASSERT_TRUE(model->Forward(input, 2, output, seconds).ok());
  for (double s : seconds) EXPECT_GE(s, 0.0);
  EXPECT_LE(MaxRowRelativeError(
                output, ReferenceForward(m.config, m.tensors, input, 2), 2),
            kTolerance);
}

TEST(ModelTest, ForwardRejectsBadSizes) {
  const RandomModel m = BuildRandomModel(
      "s", 4, {{3, Activation::kRelu}, {2, Activation::kIdentity}},
      WeightLayout::kOutIn, 1);
  std::shared_ptr<const Model> model = CreateModel(m);
  ASSERT_NE(model, nullptr);
  std::vector<float> input(8), output(4);
  std::vector<double> seconds(3);

  absl::Status s = model->Forward(input, 0, {});
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("rows is 0"));

  s = model->Forward(std::span<const float>(input).first(7), 2, output);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("input has 7 values, expected rows * "
                                     "input_size = 2 * 4 = 8"));

  s = model->Forward(input, 2, std::span<float>(output).first(3));
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("output has room for 3 values, expected "
                                     "rows * output_size = 2 * 2 = 4"));

  s = model->Forward(input, 2, output, seconds);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("layer_seconds has 3 entries, expected 0 "
                                     "or 2"));
}

TEST(ModelTest, CreateRejectsBadOptions) {
  const RandomModel m = BuildRandomModel("o", 4, {{3, Activation::kRelu}},
                                         WeightLayout::kOutIn, 1);
  absl::StatusOr<ModelSpec> spec = BuildModelSpec(m.config, m.tensors, "mem");
  ASSERT_TRUE(spec.ok());
  absl::StatusOr<std::shared_ptr<const Model>> model =
      Model::Create(*spec, 1, {0, {1}});
  EXPECT_THAT(model.status().message(), HasSubstr("intra_op_threads is 0"));
  model = Model::Create(*spec, 1, {1, {4, -2}});
  EXPECT_THAT(model.status().message(),
              HasSubstr("prewarm batch size -2 is invalid"));
}

TEST(ModelTest, InfoDescribesTheModel) {
  RandomModel m = BuildRandomModel(
      "info", 6,
      {{5, Activation::kLeakyRelu}, {3, Activation::kSoftmax, false}},
      WeightLayout::kInOut, 4);
  m.config.mutable_output()->add_labels("a");
  m.config.mutable_output()->add_labels("b");
  m.config.mutable_output()->add_labels("c");
  absl::StatusOr<ModelSpec> spec = BuildModelSpec(m.config, m.tensors, "mem");
  ASSERT_TRUE(spec.ok());
  absl::StatusOr<std::shared_ptr<const Model>> model =
      Model::Create(*spec, 7, {}, 0.25);
  ASSERT_TRUE(model.ok()) << model.status();
  const ModelInfo& info = (*model)->info();
  EXPECT_EQ(info.name, "info");
  EXPECT_EQ(info.version, 7);
  EXPECT_EQ(info.input_name, "x");
  EXPECT_EQ(info.input_size, 6);
  EXPECT_EQ(info.output_name, "y");
  EXPECT_EQ(info.output_size, 3);
  EXPECT_EQ(info.labels, (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_EQ(info.weight_layout, WeightLayout::kInOut);
  ASSERT_EQ(info.layers.size(), 2u);
  EXPECT_EQ(info.layers[0].parameters, 35);
  EXPECT_EQ(info.layers[1].parameters, 15);
  EXPECT_EQ(info.total_parameters, 50);
  EXPECT_EQ(info.weight_bytes, 200);
  EXPECT_GE(info.load_seconds, 0.25);
  EXPECT_EQ(info.layers[0].activation, Activation::kLeakyRelu);
  EXPECT_FLOAT_EQ(info.layers[0].alpha, 0.01f);
  EXPECT_TRUE(info.layers[0].has_bias);
  EXPECT_FALSE(info.layers[1].has_bias);
  EXPECT_EQ(info.layers[1].bias.mean, 0);
  EXPECT_EQ(info.layers[1].bias.std, 0);

  const std::vector<float>& w = m.tensors["fc0.weight"].values;
  double sum = 0, min = w[0], max = w[0];
  for (float v : w) {
    sum += v;
    min = std::min<double>(min, v);
    max = std::max<double>(max, v);
  }
  const double mean = sum / w.size();
  double var = 0;
  for (float v : w) var += (v - mean) * (v - mean);
  EXPECT_NEAR(info.layers[0].weight.mean, mean, 1e-12);
  EXPECT_NEAR(info.layers[0].weight.std, std::sqrt(var / w.size()), 1e-12);
  EXPECT_EQ(info.layers[0].weight.min, min);
  EXPECT_EQ(info.layers[0].weight.max, max);
}

}  // namespace
}  // namespace nnserve::engine
