// ModelLifecycle in modes none and explicit (server/lifecycle/
// model_lifecycle.h) over a real repository: start-up (policies, failures,
// invalid names), LoadModel/UnloadModel and their errors, load metrics.
// Mode poll is in model_lifecycle_poll_test.cc.
#include <filesystem>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/server/lifecycle/lifecycle_fixture.h"

namespace nnserve::server {
namespace {

namespace fs = std::filesystem;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

TEST(ModelControlModeTest, NamesParse) {
  for (ModelControlMode mode :
       {ModelControlMode::kNone, ModelControlMode::kPoll,
        ModelControlMode::kExplicit}) {
    EXPECT_EQ(*ParseModelControlMode(ModelControlModeName(mode)), mode);
  }
  auto bad = ParseModelControlMode("manual");
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(
      bad.status().message(),
      HasSubstr("'manual' is unknown, expected none, poll or explicit"));
}

TEST_F(LifecycleTest, NoneModeServesWhatThePoliciesSelect) {
  const auto alpha1 = Model("alpha", 1);
  const auto alpha2 = Model("alpha", 2);
  repo_.AddModel(alpha1.config, {{1, alpha1.tensors}, {2, alpha2.tensors}});
  auto beta = Model("beta", 3);
  beta.config.mutable_version_policy()->mutable_all();
  repo_.AddModel(beta.config, {{1, beta.tensors}, {3, beta.tensors}});
  auto lifecycle = Make(ModelControlMode::kNone);
  ASSERT_TRUE(lifecycle->Start().ok());

  EXPECT_THAT(registry_.AvailableVersions("alpha"), ElementsAre(2));
  EXPECT_THAT(registry_.AvailableVersions("beta"), ElementsAre(1, 3));
  EXPECT_EQ(registry_.Find("alpha", 1).status().code(),
            absl::StatusCode::kNotFound);
  auto served = registry_.Find("alpha", 0);
  ASSERT_TRUE(served.ok()) << served.status();
  EXPECT_TRUE(ComputesLike(*served, alpha2));
  EXPECT_EQ((*served)->input_description, "model 'alpha' version 2 input 'x'");
  EXPECT_EQ((*served)->queue->options().max_batch_rows,
            BatchingOptions{}.max_batch_rows);
  EXPECT_EQ(Loaded("alpha", 2), 1);
  EXPECT_EQ(Loaded("alpha", 1), -1);  // Never loaded: no series.
  EXPECT_EQ(Loads("alpha", "success"), 1);
  EXPECT_EQ(Loads("beta", "success"), 2);
  EXPECT_EQ(Metric("nnserve_model_load_duration_seconds", {{"model", "beta"}}),
            2);

  // Nothing changes afterwards: the control RPCs are refused, a rescan is
  // a no-op.
  absl::Status load = Call(*lifecycle, &ModelLifecycle::LoadModel, "alpha");
  EXPECT_EQ(load.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(load.message(), HasSubstr("--model-control-mode=explicit"));
  EXPECT_THAT(load.message(), HasSubstr("mode 'none'"));
  EXPECT_EQ(Call(*lifecycle, &ModelLifecycle::UnloadModel, "alpha").code(),
            absl::StatusCode::kFailedPrecondition);
  repo_.AddVersion("alpha", 3, alpha1.tensors);
  lifecycle->Rescan();
  lifecycle->Stop();  // Joins every lifecycle thread.
  EXPECT_THAT(registry_.AvailableVersions("alpha"), ElementsAre(2));
}

TEST_F(LifecycleTest, BatchingSettingsComeFromTheConfigAndTheDefaults) {
  auto m = Model("m", 1);
  m.config.mutable_dynamic_batching()->set_max_batch_rows(8);
  repo_.AddModel(m.config, {{1, m.tensors}});
  auto lifecycle = Make(ModelControlMode::kNone, [](auto& o) {
    o.batching_defaults.merge = false;
    o.batching_defaults.max_queue_size = 17;
  });
  ASSERT_TRUE(lifecycle->Start().ok());
  auto served = registry_.Find("m", 0);
  ASSERT_TRUE(served.ok());
  const BatchingOptions& batching = (*served)->queue->options();
  EXPECT_EQ(batching.max_batch_rows, 8);
  EXPECT_EQ(batching.max_queue_size, 17);
  EXPECT_FALSE(batching.merge);
}

TEST_F(LifecycleTest, NoneModeFailsOnTheFirstBadVersion) {
  const auto alpha = Model("alpha", 1);
  repo_.AddModel(alpha.config, {{1, alpha.tensors}});
  const auto beta = Model("beta", 2);
  repo_.AddModel(beta.config, {{1, beta.tensors}});
  repo_.AddVersionFiles("beta", 2, TruncatedWeights(beta));
  auto lifecycle = Make(ModelControlMode::kNone);
  absl::Status status = lifecycle->Start();
  ASSERT_FALSE(status.ok());
  EXPECT_THAT(status.message(), HasSubstr("beta/2/model.safetensors"));
  EXPECT_EQ(Loads("beta", "failure"), 1);
}

TEST_F(LifecycleTest, NoneModeWithAllowedFailuresServesTheRest) {
  const auto alpha = Model("alpha", 1);
  repo_.AddModel(alpha.config, {{1, alpha.tensors}});
  auto beta = Model("beta", 2);
  beta.config.mutable_version_policy()->mutable_all();
  repo_.AddModel(beta.config, {{1, beta.tensors}});
  repo_.AddVersionFiles("beta", 2, TruncatedWeights(beta));
  fs::create_directories(repo_.path() / "empty");
  auto lifecycle = Make(ModelControlMode::kNone,
                        [](auto& o) { o.allow_load_failures = true; });
  ASSERT_TRUE(lifecycle->Start().ok());
  EXPECT_EQ(ServingVersion("alpha"), 1);
  // beta 2 failed: beta 1 is what version 0 means.
  EXPECT_EQ(ServingVersion("beta"), 1);
  const v1::ModelVersionStatus failed = Listed("beta", 2);
  EXPECT_EQ(failed.state(), v1::ModelVersionStatus::FAILED);
  EXPECT_THAT(failed.error(), HasSubstr("beta/2/model.safetensors"));
  // Listed to callers: paths relative to the repository, never where the
  // server keeps it.
  EXPECT_THAT(failed.error(), ::testing::Not(HasSubstr(repo_.path().string())));
  EXPECT_EQ(Loaded("beta", 2), 0);
  EXPECT_EQ(Listed("empty", 0).state(), v1::ModelVersionStatus::FAILED);
  EXPECT_THAT(Listed("empty", 0).error(), HasSubstr("config.pbtxt: not found"));
}

TEST_F(LifecycleTest, NoneModeNeedsOneServedVersion) {
  auto lifecycle = Make(ModelControlMode::kNone,
                        [](auto& o) { o.allow_load_failures = true; });
  absl::Status empty = lifecycle->Start();
  EXPECT_EQ(empty.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(empty.message(), HasSubstr("contains no model directories"));

  const auto bad = Model("bad", 1);
  repo_.AddModel(bad.config, {});
  repo_.AddVersionFiles("bad", 1, TruncatedWeights(bad));
  auto again = Make(ModelControlMode::kNone,
                    [](auto& o) { o.allow_load_failures = true; });
  absl::Status none = again->Start();
  ASSERT_FALSE(none.ok());
  EXPECT_THAT(none.message(), HasSubstr("no model version could be loaded"));
  EXPECT_THAT(none.message(), HasSubstr("bad/1/model.safetensors"));
}

TEST_F(LifecycleTest, InvalidDirectoryNameNeverFailsStartUp) {
  const auto alpha = Model("alpha", 1);
  repo_.AddModel(alpha.config, {{1, alpha.tensors}});
  fs::create_directories(repo_.path() / "not a name" / "1");
  fs::create_directories(repo_.path() / ".git");
  fs::create_directories(repo_.path() / "lost+found");
  auto lifecycle = Make(ModelControlMode::kNone);  // Strict.
  ASSERT_TRUE(lifecycle->Start().ok());
  EXPECT_EQ(ServingVersion("alpha"), 1);
  const v1::ModelVersionStatus invalid = Listed("not a name", 0);
  EXPECT_EQ(invalid.state(), v1::ModelVersionStatus::FAILED);
  EXPECT_THAT(invalid.error(), HasSubstr("is not a valid model name"));
  EXPECT_THAT(registry_.ModelNames(), ElementsAre("alpha", "not a name"));
}

TEST_F(LifecycleTest, ExplicitModeLoadsAndUnloadsOnRequest) {
  const auto alpha = Model("alpha", 1);
  const auto beta = Model("beta", 2);
  const auto gamma = Model("gamma", 3);
  repo_.AddModel(alpha.config, {{1, alpha.tensors}});
  repo_.AddModel(beta.config, {{1, beta.tensors}});
  repo_.AddModel(gamma.config, {});
  repo_.AddVersionFiles("gamma", 1, TruncatedWeights(gamma));
  auto lifecycle = Make(ModelControlMode::kExplicit,
                        [](auto& o) { o.startup_models = {"alpha"}; });
  ASSERT_TRUE(lifecycle->Start().ok());
  EXPECT_EQ(lifecycle->mode(), ModelControlMode::kExplicit);
  EXPECT_THAT(registry_.ModelNames(), ElementsAre("alpha"));

  ASSERT_TRUE(Call(*lifecycle, &ModelLifecycle::LoadModel, "beta").ok());
  auto served = registry_.Find("beta", 0);
  ASSERT_TRUE(served.ok()) << served.status();
  EXPECT_TRUE(ComputesLike(*served, beta));

  absl::Status ghost = Call(*lifecycle, &ModelLifecycle::LoadModel, "ghost");
  EXPECT_EQ(ghost.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(ghost.message(), HasSubstr("model 'ghost' not found"));
  EXPECT_THAT(ghost.message(), HasSubstr("'<repository>'"));
  EXPECT_THAT(ghost.message(),
              ::testing::Not(HasSubstr(repo_.path().string())));

  // A version that fails validation: its message, listed FAILED; asked
  // again, it is tried again even though nothing changed.
  absl::Status bad = Call(*lifecycle, &ModelLifecycle::LoadModel, "gamma");
  EXPECT_THAT(bad.code(),
              ::testing::AnyOf(absl::StatusCode::kInvalidArgument,
                               absl::StatusCode::kFailedPrecondition));
  EXPECT_THAT(bad.message(), HasSubstr("gamma/1/model.safetensors"));
  EXPECT_THAT(bad.message(), ::testing::Not(HasSubstr(repo_.path().string())));
  EXPECT_EQ(Listed("gamma", 1).state(), v1::ModelVersionStatus::FAILED);
  EXPECT_EQ(Listed("gamma", 1).error(), bad.message());
  EXPECT_FALSE(Call(*lifecycle, &ModelLifecycle::LoadModel, "gamma").ok());
  EXPECT_EQ(Loads("gamma", "failure"), 2);

  // Unchanged versions are not reloaded by a second LoadModel.
  ASSERT_TRUE(Call(*lifecycle, &ModelLifecycle::LoadModel, "beta").ok());
  EXPECT_EQ(*registry_.Find("beta", 0), *served);
  EXPECT_EQ(Loads("beta", "success"), 1);

  // Unload: in-flight holders keep the version; it is no longer found.
  ASSERT_TRUE(Call(*lifecycle, &ModelLifecycle::UnloadModel, "beta").ok());
  EXPECT_EQ(registry_.Find("beta", 0).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_TRUE(ComputesLike(*served, beta));
  EXPECT_EQ(Loaded("beta", 1), 0);
  served->reset();
  EXPECT_EQ(Loaded("beta", 1), -1);
  // In the repository but not served: nothing to do.
  EXPECT_TRUE(Call(*lifecycle, &ModelLifecycle::UnloadModel, "beta").ok());
  absl::Status unknown =
      Call(*lifecycle, &ModelLifecycle::UnloadModel, "ghost");
  EXPECT_EQ(unknown.code(), absl::StatusCode::kNotFound);
  // A FAILED model is unloaded from the list too.
  ASSERT_TRUE(Call(*lifecycle, &ModelLifecycle::UnloadModel, "gamma").ok());
  EXPECT_THAT(registry_.ModelNames(), ElementsAre("alpha"));

  lifecycle->Stop();
  absl::Status late = Call(*lifecycle, &ModelLifecycle::LoadModel, "beta");
  EXPECT_EQ(late.code(), absl::StatusCode::kUnavailable);
}

TEST_F(LifecycleTest, ExplicitStartUpModels) {
  const auto alpha = Model("alpha", 1);
  const auto beta = Model("beta", 2);
  repo_.AddModel(alpha.config, {{1, alpha.tensors}});
  repo_.AddModel(beta.config, {{1, beta.tensors}});
  auto none = Make(ModelControlMode::kExplicit);
  ASSERT_TRUE(none->Start().ok());
  EXPECT_THAT(registry_.ModelNames(), IsEmpty());
  none->Stop();

  auto typo = Make(ModelControlMode::kExplicit, [](auto& o) {
    o.startup_models = {"alpha", "betta"};
  });
  absl::Status status = typo->Start();
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(status.message(), HasSubstr("--load-model 'betta'"));
  typo->Stop();

  auto all = Make(ModelControlMode::kExplicit,
                  [](auto& o) { o.startup_models = {"*"}; });
  ASSERT_TRUE(all->Start().ok());
  EXPECT_EQ(ServingVersion("alpha"), 1);
  EXPECT_EQ(ServingVersion("beta"), 1);
}

TEST_F(LifecycleTest, PollModeRefusesTheControlRequests) {
  const auto alpha = Model("alpha", 1);
  repo_.AddModel(alpha.config, {{1, alpha.tensors}});
  auto lifecycle = Make(ModelControlMode::kPoll);
  ASSERT_TRUE(lifecycle->Start().ok());
  absl::Status unload = Call(*lifecycle, &ModelLifecycle::UnloadModel, "alpha");
  EXPECT_EQ(unload.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(unload.message(), HasSubstr("mode 'poll'"));
  EXPECT_EQ(ServingVersion("alpha"), 1);
}

}  // namespace
}  // namespace nnserve::server
