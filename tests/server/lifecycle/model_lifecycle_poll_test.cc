// ModelLifecycle in mode poll (server/lifecycle/model_lifecycle.h): a
// repository changed by rename while the lifecycle serves it — new
// versions, the same version's files replaced, corrupt versions (the old
// keeps serving; retried only when the files change), broken configs,
// policy changes, models added and removed, and version 0 answering
// throughout. Scans happen on Rescan() (the poll interval is an hour);
// results are waited for.
#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/server/lifecycle/lifecycle_fixture.h"

namespace nnserve::server {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

TEST_F(LifecycleTest, NewVersionServesThenTheOldOneIsDropped) {
  const auto v1 = Model("alpha", 1);
  const auto v2 = Model("alpha", 2);
  repo_.AddModel(v1.config, {{1, v1.tensors}});
  auto lifecycle = Make(ModelControlMode::kPoll);
  ASSERT_TRUE(lifecycle->Start().ok());
  auto old_version = registry_.Find("alpha", 0);
  ASSERT_TRUE(old_version.ok());

  repo_.AddVersion("alpha", 2, v2.tensors);
  lifecycle->Rescan();
  ASSERT_TRUE(WaitFor([&] {
    return registry_.AvailableVersions("alpha") == std::vector<int64_t>{2};
  }));
  auto new_version = registry_.Find("alpha", 0);
  ASSERT_TRUE(new_version.ok());
  EXPECT_TRUE(ComputesLike(*new_version, v2));
  // A call that still holds version 1 finishes on it.
  EXPECT_TRUE(ComputesLike(*old_version, v1));
  EXPECT_EQ(Loaded("alpha", 1), 0);
  EXPECT_EQ(Loaded("alpha", 2), 1);
  old_version->reset();
  EXPECT_EQ(Loaded("alpha", 1), -1);  // Its series are gone.
}

TEST_F(LifecycleTest, ChangedFilesReloadTheSameVersionInPlace) {
  const auto before = Model("alpha", 1);
  const auto after = Model("alpha", 2);
  repo_.AddModel(before.config, {{1, before.tensors}});
  auto lifecycle = Make(ModelControlMode::kPoll);
  ASSERT_TRUE(lifecycle->Start().ok());
  auto old_instance = registry_.Find("alpha", 1);
  ASSERT_TRUE(old_instance.ok());

  repo_.ReplaceWeights("alpha", 1, after.tensors);
  lifecycle->Rescan();
  ASSERT_TRUE(
      WaitFor([&] { return registry_.Served("alpha", 1) != *old_instance; }));
  auto new_instance = registry_.Find("alpha", 1);
  ASSERT_TRUE(new_instance.ok());
  EXPECT_EQ(Loads("alpha", "success"), 2);
  EXPECT_TRUE(ComputesLike(*new_instance, after));
  EXPECT_TRUE(ComputesLike(*old_instance, before));
  // One set of series for the version, still 1 after the old one goes.
  old_instance->reset();
  EXPECT_EQ(Loaded("alpha", 1), 1);
  EXPECT_EQ(Listed("alpha", 1).state(), v1::ModelVersionStatus::AVAILABLE);
}

TEST_F(LifecycleTest, CorruptVersionKeepsTheOldOneAndIsRetriedWhenChanged) {
  const auto good = Model("alpha", 1);
  const auto fixed = Model("alpha", 2);
  repo_.AddModel(good.config, {{1, good.tensors}});
  // "zz" scans after "alpha" and syncs run in queue order on one loader
  // thread; a sync still queued takes a newer scan in its place. So once
  // zz's versions from two more scans serve, alpha has been synced with a
  // scan that came after the failure.
  const auto marker = Model("zz", 9);
  repo_.AddModel(marker.config, {{1, marker.tensors}});
  auto lifecycle = Make(ModelControlMode::kPoll);
  ASSERT_TRUE(lifecycle->Start().ok());

  repo_.AddVersionFiles("alpha", 2, TruncatedWeights(fixed));
  lifecycle->Rescan();
  ASSERT_TRUE(WaitFor([&] {
    return Listed("alpha", 2).state() == v1::ModelVersionStatus::FAILED;
  }));
  EXPECT_THAT(Listed("alpha", 2).error(),
              HasSubstr("alpha/2/model.safetensors"));
  EXPECT_EQ(ServingVersion("alpha"), 1);
  EXPECT_THAT(registry_.AvailableVersions("alpha"), ElementsAre(1));
  EXPECT_EQ(Loaded("alpha", 2), 0);
  EXPECT_EQ(Loads("alpha", "failure"), 1);

  // Rescanned without a change: not retried.
  for (int64_t version : {2, 3}) {
    repo_.AddVersion("zz", version, marker.tensors);
    lifecycle->Rescan();
    ASSERT_TRUE(WaitFor([&] { return ServingVersion("zz") == version; }));
  }
  EXPECT_EQ(Loads("alpha", "failure"), 1);
  EXPECT_EQ(ServingVersion("alpha"), 1);

  // The rest of the file arrives (as a new file): retried, serves, and
  // version 1 is dropped.
  repo_.ReplaceWeights("alpha", 2, fixed.tensors);
  lifecycle->Rescan();
  ASSERT_TRUE(WaitFor([&] {
    return registry_.AvailableVersions("alpha") == std::vector<int64_t>{2};
  }));
  auto served = registry_.Find("alpha", 0);
  ASSERT_TRUE(served.ok());
  EXPECT_TRUE(ComputesLike(*served, fixed));
  EXPECT_EQ(Listed("alpha", 2).error(), "");
}

TEST_F(LifecycleTest, BrokenConfigKeepsServingUntilItIsFixed) {
  const auto m = Model("alpha", 1);
  repo_.AddModel(m.config, {{1, m.tensors}});
  auto lifecycle = Make(ModelControlMode::kPoll);
  ASSERT_TRUE(lifecycle->Start().ok());
  auto served = registry_.Find("alpha", 0);
  ASSERT_TRUE(served.ok());

  repo_.ReplaceFile("alpha/config.pbtxt", "name: \"alpha\" layers {");
  lifecycle->Rescan();
  ASSERT_TRUE(WaitFor([&] {
    return Listed("alpha", 0).state() == v1::ModelVersionStatus::FAILED;
  }));
  EXPECT_THAT(Listed("alpha", 0).error(), HasSubstr("alpha/config.pbtxt"));
  EXPECT_EQ(*registry_.Find("alpha", 0), *served);

  // Fixed: the model-wide error goes, and the version is reloaded (its
  // config file changed).
  repo_.ReplaceConfig(m.config);
  lifecycle->Rescan();
  ASSERT_TRUE(WaitFor([&] { return registry_.Served("alpha", 1) != *served; }));
  EXPECT_EQ(Listed("alpha", 0).state(),
            v1::ModelVersionStatus::STATE_UNSPECIFIED);
  auto reloaded = registry_.Find("alpha", 0);
  ASSERT_TRUE(reloaded.ok());
  EXPECT_TRUE(ComputesLike(*reloaded, m));
}

TEST_F(LifecycleTest, RemovedVersionGoesEvenWhileTheConfigIsBroken) {
  auto m = Model("alpha", 1);
  m.config.mutable_version_policy()->mutable_all();
  repo_.AddModel(m.config, {{1, m.tensors}, {2, m.tensors}});
  auto lifecycle = Make(ModelControlMode::kPoll);
  ASSERT_TRUE(lifecycle->Start().ok());
  ASSERT_THAT(registry_.AvailableVersions("alpha"), ElementsAre(1, 2));

  repo_.ReplaceFile("alpha/config.pbtxt", "not a config");
  testing::RenameOrThrow(repo_.ModelDir("alpha") / "1",
                         repo_.NewStagingDir() / "1");
  lifecycle->Rescan();
  ASSERT_TRUE(WaitFor([&] {
    return registry_.AvailableVersions("alpha") == std::vector<int64_t>{2};
  }));
  EXPECT_EQ(Listed("alpha", 0).state(), v1::ModelVersionStatus::FAILED);
  EXPECT_EQ(ServingVersion("alpha"), 2);
}

TEST_F(LifecycleTest, PolicyChangesAddAndDropVersions) {
  auto m = Model("alpha", 1);
  repo_.AddModel(m.config, {{1, m.tensors}, {2, m.tensors}, {3, m.tensors}});
  auto lifecycle = Make(ModelControlMode::kPoll);
  ASSERT_TRUE(lifecycle->Start().ok());
  EXPECT_THAT(registry_.AvailableVersions("alpha"), ElementsAre(3));

  m.config.mutable_version_policy()->mutable_all();
  repo_.ReplaceConfig(m.config);
  lifecycle->Rescan();
  ASSERT_TRUE(WaitFor([&] {
    return registry_.AvailableVersions("alpha") ==
           std::vector<int64_t>{1, 2, 3};
  }));

  m.config.mutable_version_policy()->mutable_specific()->add_versions(2);
  repo_.ReplaceConfig(m.config);
  lifecycle->Rescan();
  ASSERT_TRUE(WaitFor([&] {
    return registry_.AvailableVersions("alpha") == std::vector<int64_t>{2};
  }));
  EXPECT_EQ(ServingVersion("alpha"), 2);
  EXPECT_EQ(Listed("alpha", 3).state(),
            v1::ModelVersionStatus::STATE_UNSPECIFIED);
}

TEST_F(LifecycleTest, ModelsAreAddedAndRemovedWithTheirDirectories) {
  const auto alpha = Model("alpha", 1);
  const auto beta = Model("beta", 2);
  repo_.AddModel(alpha.config, {{1, alpha.tensors}});
  // Poll mode starts with whatever is there, even nothing valid.
  auto lifecycle = Make(ModelControlMode::kPoll);
  ASSERT_TRUE(lifecycle->Start().ok());

  repo_.AddModel(beta.config, {{4, beta.tensors}});
  lifecycle->Rescan();
  ASSERT_TRUE(WaitFor([&] { return ServingVersion("beta") == 4; }));

  repo_.RemoveModel("alpha");
  lifecycle->Rescan();
  ASSERT_TRUE(WaitFor([&] {
    return registry_.ModelNames() == std::vector<std::string>{"beta"};
  }));
  auto gone = registry_.Find("alpha", 0);
  EXPECT_EQ(gone.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(gone.status().message(),
              HasSubstr("model 'alpha' not found; available models: beta"));
  EXPECT_EQ(Loaded("alpha", 1), -1);

  // Back again, as a new model.
  repo_.AddModel(alpha.config, {{1, alpha.tensors}});
  lifecycle->Rescan();
  ASSERT_TRUE(WaitFor([&] { return ServingVersion("alpha") == 1; }));
}

TEST_F(LifecycleTest, EmptyRepositoryIsFineInPollMode) {
  auto lifecycle = Make(ModelControlMode::kPoll);
  ASSERT_TRUE(lifecycle->Start().ok());
  const auto m = Model("late", 1);
  repo_.AddModel(m.config, {{1, m.tensors}});
  lifecycle->Rescan();
  ASSERT_TRUE(WaitFor([&] { return ServingVersion("late") == 1; }));
}

// Readers resolving version 0 and running it while new versions arrive
// and the served one is replaced in place: every lookup finds a version
// and every forward pass matches the weights of the version it got.
TEST_F(LifecycleTest, VersionZeroAnswersThroughoutReloads) {
  std::vector<testing::RandomModel> weights;
  for (uint32_t seed = 0; seed < 6; ++seed) {
    weights.push_back(Model("alpha", 100 + seed));
  }
  repo_.AddModel(weights[0].config, {{1, weights[0].tensors}});
  auto lifecycle = Make(ModelControlMode::kPoll);
  ASSERT_TRUE(lifecycle->Start().ok());

  std::atomic<bool> stop{false};
  std::atomic<int64_t> lookups{0};
  std::atomic<int64_t> errors{0};
  std::thread reader([&] {
    while (!stop.load()) {
      auto found = registry_.Find("alpha", 0);
      lookups.fetch_add(1);
      if (!found.ok()) {
        errors.fetch_add(1);
        ADD_FAILURE() << found.status();
      }
    }
  });
  for (size_t i = 1; i < weights.size(); ++i) {
    // Alternately a new version (2, 3, 4) and the same version's weights
    // replaced.
    const int64_t version = static_cast<int64_t>(i + 1) / 2 + 1;
    const auto previous = registry_.Served("alpha", version);
    if (i % 2 == 1) {
      repo_.AddVersion("alpha", version, weights[i].tensors);
    } else {
      repo_.ReplaceWeights("alpha", version, weights[i].tensors);
    }
    lifecycle->Rescan();
    ASSERT_TRUE(WaitFor([&] {
      const auto now = registry_.Served("alpha", version);
      return now != nullptr && now != previous;
    }));
    auto served = registry_.Find("alpha", 0);
    ASSERT_TRUE(served.ok());
    EXPECT_EQ((*served)->version, version);
    EXPECT_TRUE(ComputesLike(*served, weights[i])) << i;
  }
  const int64_t seen = lookups.load();
  ASSERT_TRUE(WaitFor([&] { return lookups.load() > seen + 10; }));
  stop.store(true);
  reader.join();
  EXPECT_EQ(errors.load(), 0);
  ASSERT_TRUE(WaitFor([&] {
    return registry_.AvailableVersions("alpha") == std::vector<int64_t>{4};
  }));
  EXPECT_EQ(Loads("alpha", "success"), 6);
}

}  // namespace
}  // namespace nnserve::server
