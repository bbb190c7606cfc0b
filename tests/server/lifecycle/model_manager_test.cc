#include "server/lifecycle/model_manager.h"

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/util/model_builder.h"

namespace nnserve::server {
namespace {

using nnserve::testing::BuildRandomModel;
using nnserve::testing::FileFormat;
using nnserve::testing::LayerDef;
using nnserve::testing::ScopedTempDir;
using nnserve::testing::WriteModelDir;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr auto kRelu = engine::Activation::kRelu;
constexpr auto kSoftmax = engine::Activation::kSoftmax;

// A repository with:
//   alpha: versions 1 and 2 (4->3->2, different weights), both valid
//   beta:  version 1 valid (3->2), version 4 with a wrong-shaped weight
class ModelManagerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto alpha1 = BuildRandomModel("alpha", 4, {{3, kRelu}, {2, kSoftmax}},
                                   engine::WeightLayout::kOutIn, 1);
    WriteModelDir(repo_.path(), alpha1, 1, FileFormat::kSafetensors,
                  engine::DType::kF32);
    auto alpha2 = BuildRandomModel("alpha", 4, {{3, kRelu}, {2, kSoftmax}},
                                   engine::WeightLayout::kOutIn, 2);
    WriteModelDir(repo_.path(), alpha2, 2, FileFormat::kSafetensors,
                  engine::DType::kF32);
    auto beta = BuildRandomModel("beta", 3, {{2, kSoftmax}},
                                 engine::WeightLayout::kOutIn, 3);
    WriteModelDir(repo_.path(), beta, 1, FileFormat::kNpy, engine::DType::kF32);
    // Version 4 of beta stores fc0.weight as [2, 2] instead of [2, 3].
    auto bad = beta;
    bad.tensors["fc0.weight"].shape = {2, 2};
    bad.tensors["fc0.weight"].values.resize(4);
    WriteModelDir(repo_.path(), bad, 4, FileFormat::kNpy, engine::DType::kF32);
  }

  absl::StatusOr<std::unique_ptr<ModelManager>> Create(bool allow_failures) {
    return ModelManager::Create(repo_.path(), &metrics_, allow_failures);
  }

  ScopedTempDir repo_{"model_manager_test"};
  ServerMetrics metrics_{"test"};
  engine::EngineOptions options_;
};

TEST_F(ModelManagerTest, VersionsAreLoadingBeforeLoadAll) {
  auto manager = Create(false);
  ASSERT_TRUE(manager.ok()) << manager.status();
  auto found = (*manager)->Find("alpha", 1);
  EXPECT_EQ(found.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(found.status().message()),
              HasSubstr("still loading"));
  const v1::ListModelsResponse list = (*manager)->ListModels();
  ASSERT_EQ(list.models_size(), 2);
  EXPECT_EQ(list.models(0).versions(0).state(),
            v1::ModelVersionStatus::LOADING);
}

TEST_F(ModelManagerTest, LoadFailureIsReturnedWithTheValidationMessage) {
  auto manager = Create(false);
  ASSERT_TRUE(manager.ok()) << manager.status();
  absl::Status status = (*manager)->LoadAll(options_);
  ASSERT_FALSE(status.ok());
  EXPECT_THAT(std::string(status.message()), HasSubstr("fc0.weight"));
  EXPECT_THAT(std::string(status.message()), HasSubstr("[2, 2]"));
  EXPECT_THAT(std::string(status.message()), HasSubstr("beta/4"));
}

class LoadedManagerTest : public ModelManagerTest {
 protected:
  void SetUp() override {
    ModelManagerTest::SetUp();
    auto manager = Create(true);
    ASSERT_TRUE(manager.ok()) << manager.status();
    manager_ = *std::move(manager);
    ASSERT_TRUE(manager_->LoadAll(options_).ok());
  }
  std::unique_ptr<ModelManager> manager_;
};

TEST_F(LoadedManagerTest, VersionZeroIsTheNewestLoadedVersion) {
  auto served = manager_->Find("alpha", 0);
  ASSERT_TRUE(served.ok()) << served.status();
  EXPECT_EQ((*served)->name, "alpha");
  EXPECT_EQ((*served)->version, 2);
  EXPECT_EQ((*served)->model->info().version, 2);
  // beta's newest version (4) failed: version 0 falls back to version 1.
  auto beta = manager_->Find("beta", 0);
  ASSERT_TRUE(beta.ok()) << beta.status();
  EXPECT_EQ((*beta)->version, 1);
}

TEST_F(LoadedManagerTest, ExplicitVersionIsServed) {
  auto served = manager_->Find("alpha", 1);
  ASSERT_TRUE(served.ok()) << served.status();
  EXPECT_EQ((*served)->version, 1);
  EXPECT_EQ((*served)->model->info().version, 1);
  auto newest = manager_->Find("alpha", 2);
  ASSERT_TRUE(newest.ok()) << newest.status();
  // Different weight files behind the two versions.
  EXPECT_NE((*served)->model->info().layers[0].weight.mean,
            (*newest)->model->info().layers[0].weight.mean);
  EXPECT_NE((*served)->metrics, nullptr);
}

TEST_F(LoadedManagerTest, UnknownModelIsNotFoundListingTheModels) {
  auto served = manager_->Find("gamma", 0);
  EXPECT_EQ(served.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(served.status().message()),
              HasSubstr("model 'gamma' not found; available models: alpha, "
                        "beta"));
}

TEST_F(LoadedManagerTest, UnknownVersionIsNotFoundListingTheVersions) {
  auto served = manager_->Find("alpha", 7);
  EXPECT_EQ(served.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(served.status().message()),
              HasSubstr("model 'alpha' has no version 7; loaded versions: 1, "
                        "2"));
}

TEST_F(LoadedManagerTest, FailedVersionIsNotServedAndSaysWhy) {
  auto served = manager_->Find("beta", 4);
  EXPECT_EQ(served.status().code(), absl::StatusCode::kNotFound);
  const std::string message(served.status().message());
  EXPECT_THAT(message, HasSubstr("version 4 is not served"));
  EXPECT_THAT(message, HasSubstr("fc0.weight"));
  EXPECT_THAT(message, HasSubstr("loaded versions: 1"));
}

TEST_F(LoadedManagerTest, NegativeVersionIsInvalid) {
  auto served = manager_->Find("alpha", -1);
  EXPECT_EQ(served.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(LoadedManagerTest, ListModelsReportsStatesAndErrors) {
  const v1::ListModelsResponse list = manager_->ListModels();
  ASSERT_EQ(list.models_size(), 2);
  EXPECT_EQ(list.models(0).name(), "alpha");
  ASSERT_EQ(list.models(0).versions_size(), 2);
  EXPECT_EQ(list.models(0).versions(1).version(), 2);
  EXPECT_EQ(list.models(0).versions(1).state(),
            v1::ModelVersionStatus::AVAILABLE);
  EXPECT_EQ(list.models(0).versions(1).error(), "");
  const v1::ModelStatus& beta = list.models(1);
  ASSERT_EQ(beta.versions_size(), 2);
  EXPECT_EQ(beta.versions(1).version(), 4);
  EXPECT_EQ(beta.versions(1).state(), v1::ModelVersionStatus::FAILED);
  EXPECT_THAT(beta.versions(1).error(), HasSubstr("fc0.weight"));
}

TEST_F(LoadedManagerTest, AvailableVersionsExcludeFailedOnes) {
  EXPECT_THAT(manager_->AvailableVersions("alpha"), ElementsAre(1, 2));
  EXPECT_THAT(manager_->AvailableVersions("beta"), ElementsAre(1));
  EXPECT_TRUE(manager_->AvailableVersions("gamma").empty());
}

TEST_F(LoadedManagerTest, RequestMetricsBoundTheModelLabel) {
  EXPECT_EQ(manager_->RequestMetricsFor("alpha"), metrics_.ForModel("alpha"));
  EXPECT_EQ(manager_->RequestMetricsFor("no-such-model"),
            metrics_.ForUnknownModel());
  EXPECT_EQ(manager_->RequestMetricsFor("another"), metrics_.ForUnknownModel());
}

TEST_F(LoadedManagerTest, LoadedGaugeFollowsServingState) {
  const auto loaded = [&](const std::string& model, const std::string& v) {
    for (const auto& family : metrics_.registry()->Collect()) {
      if (family.name != "nnserve_model_loaded") continue;
      for (const auto& metric : family.metric) {
        std::map<std::string, std::string> labels;
        for (const auto& l : metric.label) labels[l.name] = l.value;
        if (labels["model"] == model && labels["version"] == v) {
          return metric.gauge.value;
        }
      }
    }
    return -1.0;
  };
  EXPECT_EQ(loaded("alpha", "2"), 1);
  EXPECT_EQ(loaded("beta", "4"), 0);
  manager_->MarkAllUnloaded();
  EXPECT_EQ(loaded("alpha", "2"), 0);
}

TEST(ModelManagerCreateTest, EmptyRepositoryIsAnError) {
  ScopedTempDir repo("model_manager_empty");
  ServerMetrics metrics("test");
  auto manager = ModelManager::Create(repo.path(), &metrics, true);
  EXPECT_EQ(manager.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(manager.status().message()),
              HasSubstr("contains no model directories"));
}

TEST(ModelManagerCreateTest, ModelWithoutVersionsFailsUnlessAllowed) {
  ScopedTempDir repo("model_manager_noversion");
  auto model = BuildRandomModel("solo", 2, {{2, kSoftmax}},
                                engine::WeightLayout::kOutIn, 9);
  WriteModelDir(repo.path(), model, 1, FileFormat::kSafetensors,
                engine::DType::kF32);
  std::filesystem::create_directories(repo.path() / "empty");
  ServerMetrics metrics("test");
  auto strict = ModelManager::Create(repo.path(), &metrics, false);
  EXPECT_FALSE(strict.ok());
  EXPECT_THAT(std::string(strict.status().message()), HasSubstr("empty"));

  auto lenient = ModelManager::Create(repo.path(), &metrics, true);
  ASSERT_TRUE(lenient.ok()) << lenient.status();
  ASSERT_TRUE((*lenient)->LoadAll(engine::EngineOptions{}).ok());
  EXPECT_TRUE((*lenient)->Find("solo", 0).ok());
  const v1::ListModelsResponse list = (*lenient)->ListModels();
  ASSERT_EQ(list.models_size(), 2);
  EXPECT_EQ(list.models(0).name(), "empty");
  ASSERT_EQ(list.models(0).versions_size(), 1);
  EXPECT_EQ(list.models(0).versions(0).state(), v1::ModelVersionStatus::FAILED);
  EXPECT_FALSE(list.models(0).versions(0).error().empty());
  EXPECT_EQ((*lenient)->Find("empty", 0).status().code(),
            absl::StatusCode::kNotFound);
}

TEST(ModelManagerCreateTest, AllVersionsFailingIsAnErrorEvenWhenAllowed) {
  ScopedTempDir repo("model_manager_allbad");
  auto model = BuildRandomModel("bad", 2, {{2, kSoftmax}},
                                engine::WeightLayout::kOutIn, 9);
  model.tensors.erase("fc0.bias");
  WriteModelDir(repo.path(), model, 1, FileFormat::kSafetensors,
                engine::DType::kF32);
  ServerMetrics metrics("test");
  auto manager = ModelManager::Create(repo.path(), &metrics, true);
  ASSERT_TRUE(manager.ok()) << manager.status();
  absl::Status status = (*manager)->LoadAll(engine::EngineOptions{});
  EXPECT_FALSE(status.ok());
  EXPECT_THAT(std::string(status.message()),
              HasSubstr("no model version could be loaded"));
  EXPECT_THAT(std::string(status.message()), HasSubstr("fc0.bias"));
}

}  // namespace
}  // namespace nnserve::server
