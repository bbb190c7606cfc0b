// Tests for the registry of served versions (server/lifecycle/
// model_registry.h): lookups and their error messages, swaps, FAILED
// versions next to served ones, removal, ListModels, the loaded gauge.
#include "server/lifecycle/model_registry.h"

#include <atomic>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace nnserve::server {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

class ModelRegistryTest : public ::testing::Test {
 protected:
  // A served version with metrics and no model or queue (the registry
  // touches neither).
  std::shared_ptr<const ServedVersion> Version(const std::string& name,
                                               int64_t version) {
    auto served = std::make_shared<ServedVersion>();
    served->name = name;
    served->version = version;
    served->metrics = metrics_.ForModelVersion(name, version, {"fc0"});
    return served;
  }

  // nnserve_model_loaded{model, version}: its value, or -1 without series.
  double Loaded(const std::string& model, int64_t version) {
    for (const auto& family : metrics_.registry()->Collect()) {
      if (family.name != "nnserve_model_loaded") continue;
      for (const auto& metric : family.metric) {
        std::map<std::string, std::string> labels;
        for (const auto& l : metric.label) labels[l.name] = l.value;
        if (labels["model"] == model &&
            labels["version"] == std::to_string(version)) {
          return metric.gauge.value;
        }
      }
    }
    return -1;
  }

  std::string FindError(std::string_view model, int64_t version) {
    auto found = registry_.Find(model, version);
    EXPECT_FALSE(found.ok());
    return found.ok() ? "" : std::string(found.status().message());
  }

  ServerMetrics metrics_{"test"};
  ModelRegistry registry_{&metrics_};
};

TEST_F(ModelRegistryTest, EmptyRegistryKnowsNoModel) {
  EXPECT_EQ(registry_.Find("a", 0).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_THAT(FindError("a", 0),
              HasSubstr("model 'a' not found; available models: "));
  EXPECT_EQ(registry_.ListModels().models_size(), 0);
  EXPECT_EQ(registry_.RequestMetricsFor("a"), metrics_.ForUnknownModel());
  EXPECT_THAT(registry_.ModelNames(), IsEmpty());
}

TEST_F(ModelRegistryTest, AHugeUnknownNameIsClippedInTheError) {
  const std::string name(100000, 'x');
  const std::string error = FindError(name, 0);
  EXPECT_THAT(error, HasSubstr("... (100000 bytes)' not found"));
  EXPECT_LT(error.size(), 300u);
}

TEST_F(ModelRegistryTest, LoadingThenPublished) {
  registry_.SetLoading("a", 1);
  EXPECT_EQ(registry_.Find("a", 0).status().code(),
            absl::StatusCode::kUnavailable);
  EXPECT_THAT(FindError("a", 0), HasSubstr("model 'a' is still loading"));
  EXPECT_THAT(FindError("a", 1), HasSubstr("version 1 is still loading"));
  EXPECT_EQ(registry_.ListModels().models(0).versions(0).state(),
            v1::ModelVersionStatus::LOADING);

  auto v1 = Version("a", 1);
  EXPECT_EQ(Loaded("a", 1), 0);
  EXPECT_EQ(registry_.Publish(v1), nullptr);
  EXPECT_EQ(Loaded("a", 1), 1);
  auto found = registry_.Find("a", 0);
  ASSERT_TRUE(found.ok()) << found.status();
  EXPECT_EQ(*found, v1);
  EXPECT_EQ(*registry_.Find("a", 1), v1);
  EXPECT_THAT(registry_.AvailableVersions("a"), ElementsAre(1));
  EXPECT_EQ(registry_.RequestMetricsFor("a"), metrics_.ForModel("a"));
  const v1::ListModelsResponse list = registry_.ListModels();
  ASSERT_EQ(list.models_size(), 1);
  EXPECT_EQ(list.models(0).name(), "a");
  EXPECT_EQ(list.models(0).versions(0).state(),
            v1::ModelVersionStatus::AVAILABLE);
  EXPECT_EQ(list.models(0).versions(0).error(), "");
}

TEST_F(ModelRegistryTest, PublishSwapsTheServedInstance) {
  auto old_instance = Version("a", 1);
  registry_.Publish(old_instance);
  // A reload of the same version: it keeps serving while loading.
  registry_.SetLoading("a", 1);
  EXPECT_EQ(*registry_.Find("a", 0), old_instance);
  EXPECT_EQ(registry_.ListModels().models(0).versions(0).state(),
            v1::ModelVersionStatus::AVAILABLE);
  auto new_instance = Version("a", 1);
  EXPECT_EQ(registry_.Publish(new_instance), old_instance);
  EXPECT_EQ(*registry_.Find("a", 1), new_instance);
  // The old instance's holder lets go: the shared series stay, still 1.
  old_instance.reset();
  EXPECT_EQ(Loaded("a", 1), 1);
}

TEST_F(ModelRegistryTest, VersionZeroIsTheNewestServedVersion) {
  registry_.Publish(Version("a", 1));
  registry_.Publish(Version("a", 3));
  EXPECT_EQ((*registry_.Find("a", 0))->version, 3);
  // A newer version loading, then failing, hides nothing.
  registry_.SetLoading("a", 5);
  EXPECT_EQ((*registry_.Find("a", 0))->version, 3);
  registry_.SetFailed("a", 5, "a.safetensors: truncated");
  EXPECT_EQ((*registry_.Find("a", 0))->version, 3);
  EXPECT_THAT(registry_.AvailableVersions("a"), ElementsAre(1, 3));
  EXPECT_EQ(Loaded("a", 5), 0);
  EXPECT_EQ(registry_.Find("a", 5).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_THAT(FindError("a", 5),
              HasSubstr("model 'a' version 5 is not served: it failed to "
                        "load (a.safetensors: truncated); loaded versions: "
                        "1, 3"));
  EXPECT_THAT(FindError("a", 4),
              HasSubstr("model 'a' has no version 4; loaded versions: 1, 3"));
  const v1::ListModelsResponse list = registry_.ListModels();
  ASSERT_EQ(list.models(0).versions_size(), 3);
  EXPECT_EQ(list.models(0).versions(2).version(), 5);
  EXPECT_EQ(list.models(0).versions(2).state(), v1::ModelVersionStatus::FAILED);
  EXPECT_EQ(list.models(0).versions(2).error(), "a.safetensors: truncated");
  // Fixed: it serves and is the newest.
  registry_.SetLoading("a", 5);
  registry_.Publish(Version("a", 5));
  EXPECT_EQ((*registry_.Find("a", 0))->version, 5);
  EXPECT_EQ(Loaded("a", 5), 1);
}

TEST_F(ModelRegistryTest, FailedReloadKeepsTheVersionServing) {
  auto served = Version("a", 2);
  registry_.Publish(served);
  registry_.SetLoading("a", 2);
  registry_.SetFailed("a", 2, "weights: NaN at index 3");
  EXPECT_EQ(*registry_.Find("a", 2), served);
  EXPECT_EQ(*registry_.Find("a", 0), served);
  EXPECT_EQ(Loaded("a", 2), 1);
  const v1::ListModelsResponse list = registry_.ListModels();
  const v1::ModelVersionStatus& status = list.models(0).versions(0);
  EXPECT_EQ(status.state(), v1::ModelVersionStatus::AVAILABLE);
  EXPECT_EQ(status.error(), "weights: NaN at index 3");
  // A successful reload clears the error.
  registry_.Publish(Version("a", 2));
  EXPECT_EQ(registry_.ListModels().models(0).versions(0).error(), "");
}

TEST_F(ModelRegistryTest, EveryVersionFailedIsNotFound) {
  registry_.SetLoading("a", 1);
  registry_.SetFailed("a", 1, "bad");
  EXPECT_THAT(FindError("a", 0),
              HasSubstr("model 'a' has no loaded version (every version "
                        "failed to load"));
  EXPECT_THAT(registry_.AvailableVersions("a"), IsEmpty());
  EXPECT_EQ(Loaded("a", 1), 0);
  EXPECT_EQ(registry_.Find("a", -1).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(ModelRegistryTest, ModelErrorIsVersionZero) {
  registry_.Publish(Version("a", 1));
  registry_.SetModelError("a", "config.pbtxt: syntax error");
  registry_.SetModelError("b", "'b c' is not a valid model name");
  v1::ListModelsResponse list = registry_.ListModels();
  ASSERT_EQ(list.models_size(), 2);
  ASSERT_EQ(list.models(0).versions_size(), 2);
  EXPECT_EQ(list.models(0).versions(0).version(), 0);
  EXPECT_EQ(list.models(0).versions(0).state(), v1::ModelVersionStatus::FAILED);
  EXPECT_EQ(list.models(0).versions(0).error(), "config.pbtxt: syntax error");
  // What serves keeps serving.
  EXPECT_EQ((*registry_.Find("a", 0))->version, 1);
  EXPECT_THAT(registry_.AvailableVersions("a"), ElementsAre(1));
  EXPECT_THAT(FindError("b", 0), HasSubstr("has no loaded version"));
  registry_.SetModelError("a", "");
  list = registry_.ListModels();
  ASSERT_EQ(list.models(0).versions_size(), 1);
  EXPECT_EQ(list.models(0).versions(0).version(), 1);
}

TEST_F(ModelRegistryTest, RemovedVersionsAndModels) {
  auto v1 = Version("a", 1);
  registry_.Publish(v1);
  registry_.Publish(Version("a", 2));
  registry_.Publish(Version("b", 1));
  // The caller still holds version 1 (an in-flight call).
  EXPECT_EQ(registry_.RemoveVersion("a", 1), v1);
  EXPECT_EQ(registry_.RemoveVersion("a", 1), nullptr);
  EXPECT_THAT(FindError("a", 1),
              HasSubstr("model 'a' has no version 1; loaded versions: 2"));
  EXPECT_EQ(Loaded("a", 1), 0);  // Until its last holder lets go.
  v1.reset();
  EXPECT_EQ(Loaded("a", 1), -1);
  EXPECT_EQ(Loaded("a", 2), 1);

  registry_.RemoveModel("a");
  EXPECT_THAT(FindError("a", 0),
              HasSubstr("model 'a' not found; available models: b"));
  EXPECT_THAT(registry_.ModelNames(), ElementsAre("b"));
  EXPECT_EQ(Loaded("a", 2), -1);
  // Request metrics stay keyed by a name the registry has known.
  EXPECT_EQ(registry_.RequestMetricsFor("a"), metrics_.ForModel("a"));
  EXPECT_EQ(registry_.RequestMetricsFor("zzz"), metrics_.ForUnknownModel());
  EXPECT_EQ(registry_.Served("b", 1)->version, 1);
  EXPECT_EQ(registry_.Served("a", 2), nullptr);
}

// Readers asking for version 0 while versions are swapped, added and
// dropped always get a version (run under ThreadSanitizer too).
TEST_F(ModelRegistryTest, VersionZeroNeverFailsDuringSwaps) {
  registry_.Publish(Version("a", 1));
  std::atomic<bool> done{false};
  std::atomic<int64_t> errors{0};
  std::atomic<int64_t> lookups{0};
  std::vector<std::thread> readers;
  for (int t = 0; t < 3; ++t) {
    readers.emplace_back([&] {
      while (!done.load()) {
        auto found = registry_.Find("a", 0);
        if (!found.ok() || *found == nullptr) errors.fetch_add(1);
        lookups.fetch_add(1);
      }
    });
  }
  for (int64_t v = 2; v < 200; ++v) {
    registry_.SetLoading("a", v);
    registry_.Publish(Version("a", v));          // New version.
    registry_.Publish(Version("a", v));          // Reloaded in place.
    registry_.RemoveVersion("a", v - 1);         // Old one dropped after.
    registry_.SetFailed("a", v + 1, "corrupt");  // A newer one fails.
    registry_.RemoveVersion("a", v + 1);
  }
  // Let the readers see the final state at least once.
  const int64_t seen = lookups.load();
  while (lookups.load() < seen + 100) std::this_thread::yield();
  done.store(true);
  for (std::thread& t : readers) t.join();
  EXPECT_EQ(errors.load(), 0);
  EXPECT_EQ((*registry_.Find("a", 0))->version, 199);
  EXPECT_THAT(registry_.AvailableVersions("a"), ElementsAre(199));
}

}  // namespace
}  // namespace nnserve::server
