// Tests for the on-disk model repository (engine/repository.h): layout
// rules, version selection and that every load failure names the file and
// the problem and yields no model.
#include "engine/repository.h"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

#include "formats/npy.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/util/model_builder.h"
#include "tests/util/reference.h"
#include "tests/util/tensor_files.h"

namespace nnserve::engine {
namespace {

using formats::DType;
using formats::ParseNpy;
using formats::Tensor;
using formats::TensorMap;

namespace fs = std::filesystem;
using ::nnserve::testing::BuildRandomModel;
using ::nnserve::testing::FileFormat;
using ::nnserve::testing::LayerDef;
using ::nnserve::testing::MaxRowRelativeError;
using ::nnserve::testing::RandomModel;
using ::nnserve::testing::ReferenceForward;
using ::nnserve::testing::ScopedTempDir;
using ::nnserve::testing::WriteFile;
using ::nnserve::testing::WriteModelDir;
using ::nnserve::testing::WriteTensorFiles;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

RandomModel Digits() {
  return BuildRandomModel("digits", 8,
                          {{6, Activation::kRelu}, {3, Activation::kSoftmax}},
                          WeightLayout::kOutIn, 1);
}

// Loads `model_dir` expecting failure; returns the message.
std::string LoadError(const fs::path& model_dir, int64_t version = 0) {
  absl::StatusOr<std::shared_ptr<const Model>> model =
      LoadModel(model_dir, version, EngineOptions{});
  EXPECT_FALSE(model.ok());
  return model.ok() ? "" : std::string(model.status().message());
}

TEST(RepositoryTest, ListsModelsSortedIgnoringFiles) {
  ScopedTempDir repo;
  fs::create_directories(repo.path() / "zeta");
  fs::create_directories(repo.path() / "alpha");
  WriteFile(repo.path() / "README.md", "not a model");
  absl::StatusOr<std::vector<std::string>> names = ListModelNames(repo.path());
  ASSERT_TRUE(names.ok()) << names.status();
  EXPECT_THAT(*names, ElementsAre("alpha", "zeta"));
}

TEST(RepositoryTest, InvalidModelDirectoryName) {
  ScopedTempDir repo;
  fs::create_directories(repo.path() / "bad name");
  absl::StatusOr<std::vector<std::string>> names = ListModelNames(repo.path());
  ASSERT_FALSE(names.ok());
  EXPECT_EQ(names.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(names.status().message(),
              HasSubstr("'bad name' is not a valid model name"));
}

TEST(RepositoryTest, MissingRepository) {
  absl::StatusOr<std::vector<std::string>> names =
      ListModelNames("/nonexistent/nnserve/repo");
  ASSERT_FALSE(names.ok());
  EXPECT_EQ(names.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(names.status().message(), HasSubstr("/nonexistent/nnserve/repo"));
}

TEST(RepositoryTest, ListsVersionsAscendingIgnoringOthers) {
  ScopedTempDir repo;
  const fs::path dir = repo.path() / "m";
  for (const char* sub : {"10", "2", "1", "0", "01", "x", "-3"}) {
    fs::create_directories(dir / sub);
  }
  WriteFile(dir / "7", "a file, not a version");
  absl::StatusOr<std::vector<int64_t>> versions = ListVersions(dir);
  ASSERT_TRUE(versions.ok()) << versions.status();
  EXPECT_THAT(*versions, ElementsAre(1, 2, 10));
}

TEST(RepositoryTest, NoVersions) {
  ScopedTempDir repo;
  const RandomModel m = Digits();
  const fs::path dir =
      WriteModelDir(repo.path(), m, 1, FileFormat::kSafetensors, DType::kF32);
  fs::remove_all(dir / "1");
  absl::StatusOr<std::vector<int64_t>> versions = ListVersions(dir);
  ASSERT_FALSE(versions.ok());
  EXPECT_EQ(versions.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(versions.status().message(), HasSubstr("no version directories"));
  EXPECT_THAT(LoadError(dir), HasSubstr("no version directories"));
}

TEST(RepositoryTest, LoadsHighestVersionByDefault) {
  ScopedTempDir repo;
  RandomModel m = Digits();
  WriteModelDir(repo.path(), m, 1, FileFormat::kSafetensors, DType::kF32);
  const fs::path dir =
      WriteModelDir(repo.path(), m, 12, FileFormat::kNpy, DType::kF32);
  absl::StatusOr<std::shared_ptr<const Model>> model =
      LoadModel(dir, 0, EngineOptions{});
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_EQ((*model)->info().version, 12);
  EXPECT_EQ((*model)->info().name, "digits");
  EXPECT_GT((*model)->info().load_seconds, 0);

  model = LoadModel(dir, 1, EngineOptions{});
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_EQ((*model)->info().version, 1);

  EXPECT_THAT(LoadError(dir, 5),
              HasSubstr("version 5 not found, available: 1, 12"));
}

TEST(RepositoryTest, ConfigNameMustMatchDirectory) {
  ScopedTempDir repo;
  const RandomModel m = Digits();
  const fs::path dir =
      WriteModelDir(repo.path(), m, 1, FileFormat::kSafetensors, DType::kF32);
  fs::rename(dir, repo.path() / "other");
  const std::string message = LoadError(repo.path() / "other");
  EXPECT_THAT(message, HasSubstr("other/config.pbtxt"));
  EXPECT_THAT(message, HasSubstr("name is 'digits', expected 'other'"));
  // A trailing slash on the directory still names it.
  absl::StatusOr<v1::ModelConfig> config =
      ReadModelConfig(repo.path() / "other" / "");
  EXPECT_THAT(config.status().message(), HasSubstr("expected 'other'"));
}

TEST(RepositoryTest, MissingConfig) {
  ScopedTempDir repo;
  fs::create_directories(repo.path() / "m" / "1");
  EXPECT_THAT(LoadError(repo.path() / "m"),
              HasSubstr("m/config.pbtxt: not found"));
}

TEST(RepositoryTest, UnknownActivationInConfigFile) {
  ScopedTempDir repo;
  const RandomModel m = Digits();
  const fs::path dir =
      WriteModelDir(repo.path(), m, 1, FileFormat::kSafetensors, DType::kF32);
  WriteFile(
      dir / "config.pbtxt",
      "name: \"digits\"\ninput { name: \"x\" size: 8 }\n"
      "layers { name: \"l\" units: 3 activation: SWISH weight: \"w\" }\n");
  const std::string message = LoadError(dir);
  EXPECT_THAT(message, HasSubstr("digits/config.pbtxt:3:"));
  EXPECT_THAT(message, HasSubstr("SWISH"));
  EXPECT_THAT(message, HasSubstr("RELU, LEAKY_RELU"));
}

TEST(RepositoryTest, UnspecifiedActivationInConfigFile) {
  ScopedTempDir repo;
  RandomModel m = Digits();
  m.config.mutable_layers(0)->clear_activation();
  const fs::path dir =
      WriteModelDir(repo.path(), m, 1, FileFormat::kSafetensors, DType::kF32);
  const std::string message = LoadError(dir);
  EXPECT_THAT(message, HasSubstr("digits/config.pbtxt"));
  EXPECT_THAT(message, HasSubstr("activation is unset"));
}

TEST(RepositoryTest, PathTraversalTensorName) {
  ScopedTempDir repo;
  RandomModel m = Digits();
  m.config.mutable_layers(0)->set_weight("../x");
  const fs::path dir =
      WriteModelDir(repo.path(), m, 1, FileFormat::kNpy, DType::kF32);
  EXPECT_THAT(LoadError(dir),
              HasSubstr("weight tensor name '../x' is invalid"));
}

TEST(RepositoryTest, SafetensorsAndNpyTogether) {
  ScopedTempDir repo;
  const RandomModel m = Digits();
  const fs::path dir =
      WriteModelDir(repo.path(), m, 1, FileFormat::kSafetensors, DType::kF32);
  WriteTensorFiles(dir / "1", m.tensors, FileFormat::kNpy, DType::kF32);
  const std::string message = LoadError(dir);
  EXPECT_THAT(message,
              HasSubstr("unexpected file(s) next to model.safetensors"));
  EXPECT_THAT(message, HasSubstr("fc0.weight.npy"));
}

TEST(RepositoryTest, MissingNpyFileNamesExpectedPath) {
  ScopedTempDir repo;
  const RandomModel m = Digits();
  const fs::path dir =
      WriteModelDir(repo.path(), m, 1, FileFormat::kNpy, DType::kF32);
  fs::remove(dir / "1" / "fc1.bias.npy");
  const std::string message = LoadError(dir);
  EXPECT_THAT(message, HasSubstr((dir / "1" / "fc1.bias.npy").string() +
                                 ": not found; expected it for tensor "
                                 "'fc1.bias'"));
}

TEST(RepositoryTest, UnknownExtraFile) {
  ScopedTempDir repo;
  const RandomModel m = Digits();
  const fs::path dir =
      WriteModelDir(repo.path(), m, 1, FileFormat::kNpy, DType::kF32);
  WriteFile(dir / "1" / "notes.txt", "hello");
  WriteFile(dir / "1" / "stale.npy", "x");
  const std::string message = LoadError(dir);
  EXPECT_THAT(message, HasSubstr("unexpected file(s): notes.txt, stale.npy"));
}

TEST(RepositoryTest, ExtraTensorInSafetensors) {
  ScopedTempDir repo;
  RandomModel m = Digits();
  const fs::path dir =
      WriteModelDir(repo.path(), m, 1, FileFormat::kSafetensors, DType::kF32);
  m.tensors["head.extra"] = m.tensors["fc1.bias"];
  WriteTensorFiles(dir / "1", m.tensors, FileFormat::kSafetensors, DType::kF32);
  const std::string message = LoadError(dir);
  EXPECT_THAT(message, HasSubstr("1/model.safetensors"));
  EXPECT_THAT(message, HasSubstr("not referenced by the config: 'head.extra'"));
}

TEST(RepositoryTest, MissingTensorInSafetensors) {
  ScopedTempDir repo;
  RandomModel m = Digits();
  m.tensors.erase("fc0.bias");
  const fs::path dir =
      WriteModelDir(repo.path(), m, 1, FileFormat::kSafetensors, DType::kF32);
  const std::string message = LoadError(dir);
  EXPECT_THAT(message, HasSubstr("1/model.safetensors"));
  EXPECT_THAT(message, HasSubstr("tensor 'fc0.bias' referenced by the config "
                                 "is missing"));
}

TEST(RepositoryTest, ShapeMismatchBetweenLayers) {
  ScopedTempDir repo;
  RandomModel m = Digits();
  Tensor& w = m.tensors["fc1.weight"];  // [3, 6] -> [3, 5]
  w.shape = {3, 5};
  w.values.resize(15);
  const fs::path dir =
      WriteModelDir(repo.path(), m, 1, FileFormat::kNpy, DType::kF32);
  EXPECT_THAT(LoadError(dir),
              HasSubstr("layer 'fc1' weight 'fc1.weight' has shape [3, 5], "
                        "expected [3, 6] (OUT_IN: [units, in]; in = 6 from "
                        "layer 'fc0')"));
}

TEST(RepositoryTest, NaNWeightFailsTheWholeModel) {
  ScopedTempDir repo;
  RandomModel m = Digits();
  m.tensors["fc0.weight"].values[3] = std::nanf("");
  const fs::path dir =
      WriteModelDir(repo.path(), m, 1, FileFormat::kSafetensors, DType::kF16);
  absl::StatusOr<std::shared_ptr<const Model>> model =
      LoadModel(dir, 0, EngineOptions{});
  ASSERT_FALSE(model.ok());
  EXPECT_EQ(model.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(model.status().message(),
              HasSubstr("tensor 'fc0.weight' has non-finite value nan at flat "
                        "index 3"));
}

TEST(RepositoryTest, CorruptTensorFileIsReportedWithPath) {
  ScopedTempDir repo;
  const RandomModel m = Digits();
  const fs::path dir =
      WriteModelDir(repo.path(), m, 1, FileFormat::kSafetensors, DType::kF32);
  WriteFile(dir / "1" / "model.safetensors", "garbage");
  EXPECT_THAT(LoadError(dir), HasSubstr("1/model.safetensors"));
}

TEST(RepositoryTest, ReadModelDirectoryReadsConfigAndVersionsTogether) {
  ScopedTempDir repo;
  RandomModel m = Digits();
  m.config.mutable_dynamic_batching()->set_max_batch_rows(16);
  m.config.mutable_version_policy()->mutable_all();
  WriteModelDir(repo.path(), m, 3, FileFormat::kSafetensors, DType::kF32);
  const fs::path dir =
      WriteModelDir(repo.path(), m, 1, FileFormat::kNpy, DType::kF32);
  fs::create_directories(dir / "tmp-2");  // Not a version directory.
  absl::StatusOr<ModelDirectory> directory = ReadModelDirectory(dir);
  ASSERT_TRUE(directory.ok()) << directory.status();
  EXPECT_THAT(directory->versions, ElementsAre(1, 3));
  EXPECT_EQ(directory->config.name(), "digits");
  EXPECT_TRUE(directory->config.version_policy().has_all());
  EXPECT_EQ(directory->config.dynamic_batching().max_batch_rows(), 16);

  fs::remove_all(dir / "1");
  fs::remove_all(dir / "3");
  absl::StatusOr<ModelDirectory> empty = ReadModelDirectory(dir);
  EXPECT_EQ(empty.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(empty.status().message(), HasSubstr("no version directories"));
}

TEST(RepositoryTest, LoadVersionReturnsTheModelWithItsConfig) {
  ScopedTempDir repo;
  RandomModel m = Digits();
  m.config.mutable_dynamic_batching()->set_max_queue_delay_us(250);
  const RandomModel other = BuildRandomModel(
      "digits", 8, {{6, Activation::kRelu}, {3, Activation::kSoftmax}},
      WeightLayout::kOutIn, 2);
  WriteModelDir(repo.path(), m, 1, FileFormat::kSafetensors, DType::kF32);
  const fs::path dir =
      WriteModelDir(repo.path(), other, 2, FileFormat::kNpy, DType::kF32);
  // config.pbtxt on disk is now other's (no batching settings); LoadVersion
  // uses the config it is given and does not read the file again.
  absl::StatusOr<LoadedVersion> loaded =
      LoadVersion(dir, m.config, 2, EngineOptions{});
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ(loaded->model->info().version, 2);
  EXPECT_GT(loaded->model->info().load_seconds, 0);
  EXPECT_EQ(loaded->config.dynamic_batching().max_queue_delay_us(), 250);
  // Version 2's weights, not version 1's.
  const std::vector<float> input = ::nnserve::testing::RandomValues(16, 1, 5);
  std::vector<float> output(6);
  ASSERT_TRUE(loaded->model->Forward(input, 2, output).ok());
  EXPECT_LE(
      MaxRowRelativeError(
          output, ReferenceForward(other.config, other.tensors, input, 2), 2),
      1e-5);

  absl::StatusOr<LoadedVersion> missing =
      LoadVersion(dir, m.config, 7, EngineOptions{});
  ASSERT_FALSE(missing.ok());
  EXPECT_THAT(missing.status().message(), HasSubstr("digits/7"));
}

TEST(RepositoryTest, VersionPolicyErrorsNameTheField) {
  ScopedTempDir repo;
  RandomModel m = Digits();
  m.config.mutable_version_policy()->mutable_latest()->set_num_versions(0);
  const fs::path dir =
      WriteModelDir(repo.path(), m, 1, FileFormat::kSafetensors, DType::kF32);
  EXPECT_THAT(LoadError(dir),
              HasSubstr("digits/config.pbtxt: version_policy.latest."
                        "num_versions is 0, expected >= 1"));
  absl::StatusOr<ModelDirectory> directory = ReadModelDirectory(dir);
  EXPECT_EQ(directory.status().code(), absl::StatusCode::kInvalidArgument);

  m.config.mutable_version_policy()->mutable_specific();
  WriteModelDir(repo.path(), m, 1, FileFormat::kSafetensors, DType::kF32);
  EXPECT_THAT(LoadError(dir),
              HasSubstr("version_policy.specific.versions is empty"));

  m.config.mutable_version_policy()->mutable_specific()->add_versions(2);
  m.config.mutable_version_policy()->mutable_specific()->add_versions(-1);
  WriteModelDir(repo.path(), m, 1, FileFormat::kSafetensors, DType::kF32);
  EXPECT_THAT(LoadError(dir),
              HasSubstr("version_policy.specific.versions[1] is -1, expected "
                        "a version number >= 1"));

  // Valid policies load; LoadModel's version 0 is the highest directory
  // whatever the policy says (the offline commands).
  m.config.mutable_version_policy()->mutable_specific()->clear_versions();
  m.config.mutable_version_policy()->mutable_specific()->add_versions(1);
  WriteModelDir(repo.path(), m, 4, FileFormat::kSafetensors, DType::kF32);
  absl::StatusOr<std::shared_ptr<const Model>> model =
      LoadModel(dir, 0, EngineOptions{});
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_EQ((*model)->info().version, 4);
}

// The example repository shipped in models/ (found relative to this source
// file, so the test works from any working directory).
fs::path SourceModelsDir() {
  return fs::path(__FILE__).parent_path().parent_path().parent_path() /
         "models";
}

absl::StatusOr<std::string> ReadAll(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(path.string());
  return std::string(std::istreambuf_iterator<char>(in), {});
}

TEST(ExampleRepositoryTest, EveryExampleModelLoadsAndMatchesReference) {
  absl::StatusOr<std::vector<std::string>> names =
      ListModelNames(SourceModelsDir());
  ASSERT_TRUE(names.ok()) << names.status();
  EXPECT_THAT(*names, ::testing::Contains("digits"));
  for (const std::string& name : *names) {
    SCOPED_TRACE(name);
    const fs::path dir = SourceModelsDir() / name;
    absl::StatusOr<std::shared_ptr<const Model>> model =
        LoadModel(dir, 0, EngineOptions{});
    ASSERT_TRUE(model.ok()) << model.status();
    absl::StatusOr<v1::ModelConfig> config = ReadModelConfig(dir);
    ASSERT_TRUE(config.ok()) << config.status();
    absl::StatusOr<TensorMap> tensors =
        ReadTensors(dir / std::to_string((*model)->info().version), *config);
    ASSERT_TRUE(tensors.ok()) << tensors.status();
    const fs::path sample = dir / "sample_input.npy";
    if (!fs::exists(sample)) continue;
    absl::StatusOr<std::string> bytes = ReadAll(sample);
    ASSERT_TRUE(bytes.ok());
    absl::StatusOr<Tensor> input = ParseNpy(*bytes, sample.string());
    ASSERT_TRUE(input.ok()) << input.status();
    ASSERT_EQ(input->shape.size(), 2u);
    const int64_t rows = input->shape[0];
    std::vector<float> output(rows * (*model)->output_size());
    ASSERT_TRUE((*model)->Forward(input->values, rows, output).ok());
    EXPECT_LE(
        MaxRowRelativeError(
            output, ReferenceForward(*config, *tensors, input->values, rows),
            rows),
        1e-5);
  }
}

// digits is a trained classifier: its samples must be classified correctly
// (sample_labels.npy is int64, read here directly: '<i8', version 1.0).
TEST(ExampleRepositoryTest, DigitsClassifiesItsSamples) {
  const fs::path dir = SourceModelsDir() / "digits";
  absl::StatusOr<std::shared_ptr<const Model>> model =
      LoadModel(dir, 0, EngineOptions{});
  ASSERT_TRUE(model.ok()) << model.status();
  absl::StatusOr<std::string> input_bytes = ReadAll(dir / "sample_input.npy");
  absl::StatusOr<std::string> label_bytes = ReadAll(dir / "sample_labels.npy");
  ASSERT_TRUE(input_bytes.ok() && label_bytes.ok());
  absl::StatusOr<Tensor> input = ParseNpy(*input_bytes, "sample_input.npy");
  ASSERT_TRUE(input.ok()) << input.status();
  const int64_t rows = input->shape[0];
  ASSERT_GE(label_bytes->size(), 10u);
  const size_t header = 10 + static_cast<uint8_t>((*label_bytes)[8]) +
                        256 * static_cast<uint8_t>((*label_bytes)[9]);
  ASSERT_THAT(label_bytes->substr(10, header - 10), HasSubstr("'<i8'"));
  ASSERT_EQ(label_bytes->size(), header + 8 * rows);
  std::vector<float> output(rows * 10);
  ASSERT_TRUE((*model)->Forward(input->values, rows, output).ok());
  int correct = 0;
  for (int64_t r = 0; r < rows; ++r) {
    int64_t label = 0;
    std::memcpy(&label, label_bytes->data() + header + 8 * r, 8);
    const auto row = std::span<const float>(output).subspan(r * 10, 10);
    const int64_t predicted =
        std::max_element(row.begin(), row.end()) - row.begin();
    correct += predicted == label;
  }
  EXPECT_GE(correct, rows - 1) << "of " << rows;
}

}  // namespace
}  // namespace nnserve::engine
