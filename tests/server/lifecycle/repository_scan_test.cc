// Tests for the repository scanner (server/lifecycle/repository_scan.h):
// which directories are models, version policies, fingerprints, and that
// odd entries are skipped with one log line per name.
#include "server/lifecycle/repository_scan.h"

#include <algorithm>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "spdlog/sinks/ringbuffer_sink.h"
#include "spdlog/spdlog.h"
#include "tests/util/live_repository.h"
#include "tests/util/model_builder.h"
#include "tests/util/tensor_files.h"

namespace nnserve::server {
namespace {

namespace fs = std::filesystem;
using engine::Activation;
using engine::WeightLayout;
using nnserve::testing::BuildRandomModel;
using nnserve::testing::LiveRepository;
using nnserve::testing::RandomModel;
using nnserve::testing::WriteFile;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

RandomModel Tiny(const std::string& name, uint32_t seed = 1) {
  return BuildRandomModel(name, 4, {{3, Activation::kRelu}},
                          WeightLayout::kOutIn, seed);
}

std::vector<std::string> Names(const std::vector<ScannedModel>& models) {
  std::vector<std::string> names;
  for (const ScannedModel& m : models) names.push_back(m.name);
  return names;
}

std::vector<int64_t> Selected(const ScannedModel& model) {
  std::vector<int64_t> versions;
  for (const ScannedVersion& v : model.selected) versions.push_back(v.version);
  return versions;
}

const ScannedModel* Find(const std::vector<ScannedModel>& models,
                         const std::string& name) {
  for (const ScannedModel& m : models) {
    if (m.name == name) return &m;
  }
  return nullptr;
}

// Captures what spdlog's default logger writes while it lives.
class CapturedLog {
 public:
  CapturedLog()
      : sink_(std::make_shared<spdlog::sinks::ringbuffer_sink_mt>(1000)),
        previous_(spdlog::default_logger()) {
    spdlog::set_default_logger(std::make_shared<spdlog::logger>("test", sink_));
  }
  ~CapturedLog() { spdlog::set_default_logger(previous_); }
  // Lines containing every one of `parts`.
  int Count(std::initializer_list<std::string> parts) const {
    int count = 0;
    for (const std::string& line : sink_->last_formatted()) {
      count += std::all_of(parts.begin(), parts.end(), [&](const auto& p) {
        return line.find(p) != std::string::npos;
      });
    }
    return count;
  }

 private:
  std::shared_ptr<spdlog::sinks::ringbuffer_sink_mt> sink_;
  std::shared_ptr<spdlog::logger> previous_;
};

TEST(SelectVersionsTest, LatestAllAndSpecific) {
  const std::vector<int64_t> present = {1, 2, 5, 9};
  v1::ModelVersionPolicy policy;  // Unset: the newest one.
  EXPECT_THAT(SelectVersions(policy, present), ElementsAre(9));
  policy.mutable_latest()->set_num_versions(2);
  EXPECT_THAT(SelectVersions(policy, present), ElementsAre(5, 9));
  policy.mutable_latest()->set_num_versions(10);
  EXPECT_THAT(SelectVersions(policy, present), ElementsAre(1, 2, 5, 9));
  policy.mutable_all();
  EXPECT_THAT(SelectVersions(policy, present), ElementsAre(1, 2, 5, 9));
  policy.mutable_specific()->add_versions(5);
  policy.mutable_specific()->add_versions(1);
  policy.mutable_specific()->add_versions(7);  // No such directory.
  EXPECT_THAT(SelectVersions(policy, present), ElementsAre(1, 5));
  EXPECT_THAT(SelectVersions(policy, {}), IsEmpty());
}

TEST(RepositoryScannerTest, SkipsHiddenEntriesAndLostFoundLoggingOnce) {
  LiveRepository repo("scan_hidden");
  repo.AddModel(Tiny("alpha").config, {{1, Tiny("alpha").tensors}});
  // What Kubernetes, git and mkfs leave in a mounted repository.
  for (const char* dir :
       {".git", "..data", "..2026_12_03_10_00_00.123456789", "lost+found"}) {
    fs::create_directories(repo.path() / dir / "1");
  }
  fs::create_symlink(repo.path() / "..2026_12_03_10_00_00.123456789",
                     repo.path() / "..data2");
  WriteFile(repo.path() / "README.md", "not a model");
  CapturedLog log;
  RepositoryScanner scanner(repo.path());
  for (int scan = 0; scan < 3; ++scan) {
    auto models = scanner.ScanAll();
    ASSERT_TRUE(models.ok()) << models.status();
    EXPECT_THAT(Names(*models), ElementsAre("alpha"));
  }
  for (const char* name : {".git", "..data", "..data2", "lost+found"}) {
    EXPECT_EQ(log.Count({"event=repository_entry_skipped",
                         std::string("name=\"") + name + "\""}),
              1)
        << name;
  }
  EXPECT_EQ(log.Count({"reason=hidden"}), 4);
  EXPECT_EQ(log.Count({"reason=lost+found"}), 1);
  // Asking for a skipped name is the same as asking for a missing one.
  EXPECT_EQ(scanner.ScanModel(".git").status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(scanner.ScanModel("lost+found").status().code(),
            absl::StatusCode::kNotFound);
}

TEST(RepositoryScannerTest, InvalidNameIsAFailedModelNotAScanError) {
  LiveRepository repo("scan_invalid");
  repo.AddModel(Tiny("ok").config, {{1, Tiny("ok").tensors}});
  fs::create_directories(repo.path() / "bad name" / "1");
  RepositoryScanner scanner(repo.path());
  auto models = scanner.ScanAll();
  ASSERT_TRUE(models.ok()) << models.status();
  EXPECT_THAT(Names(*models), ElementsAre("bad name", "ok"));
  const ScannedModel& bad = models->front();
  EXPECT_TRUE(bad.invalid_name);
  EXPECT_EQ(bad.status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(bad.status.message(),
              HasSubstr("'bad name' is not a valid model name"));
  EXPECT_THAT(bad.selected, IsEmpty());
  EXPECT_TRUE(models->back().status.ok()) << models->back().status;
}

TEST(RepositoryScannerTest, MissingRepositoryAndModel) {
  RepositoryScanner missing("/nonexistent/nnserve/repository");
  auto models = missing.ScanAll();
  EXPECT_EQ(models.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(models.status().message(),
              HasSubstr("/nonexistent/nnserve/repository"));

  LiveRepository repo("scan_missing");
  RepositoryScanner scanner(repo.path());
  auto none = scanner.ScanAll();
  ASSERT_TRUE(none.ok());
  EXPECT_THAT(*none, IsEmpty());
  auto model = scanner.ScanModel("ghost");
  EXPECT_EQ(model.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(model.status().message(), HasSubstr("model 'ghost' not found"));
  EXPECT_EQ(scanner.ScanModel("../etc").status().code(),
            absl::StatusCode::kNotFound);
}

TEST(RepositoryScannerTest, PoliciesSelectVersions) {
  LiveRepository repo("scan_policies");
  const RandomModel m = Tiny("latest");
  repo.AddModel(m.config, {{1, m.tensors}, {2, m.tensors}, {3, m.tensors}});
  RandomModel two = Tiny("two");
  two.config.mutable_version_policy()->mutable_latest()->set_num_versions(2);
  repo.AddModel(two.config,
                {{1, two.tensors}, {4, two.tensors}, {7, two.tensors}});
  RandomModel all = Tiny("all");
  all.config.mutable_version_policy()->mutable_all();
  repo.AddModel(all.config, {{2, all.tensors}, {3, all.tensors}});
  RandomModel specific = Tiny("specific");
  specific.config.mutable_version_policy()->mutable_specific()->add_versions(1);
  specific.config.mutable_version_policy()->mutable_specific()->add_versions(3);
  specific.config.mutable_version_policy()->mutable_specific()->add_versions(8);
  repo.AddModel(
      specific.config,
      {{1, specific.tensors}, {2, specific.tensors}, {3, specific.tensors}});
  RandomModel nothing = Tiny("nothing");
  nothing.config.mutable_version_policy()->mutable_specific()->add_versions(5);
  repo.AddModel(nothing.config, {{1, nothing.tensors}});

  CapturedLog log;
  RepositoryScanner scanner(repo.path());
  auto models = scanner.ScanAll();
  ASSERT_TRUE(models.ok()) << models.status();
  auto models_again = scanner.ScanAll();
  ASSERT_TRUE(models_again.ok());
  EXPECT_THAT(Selected(*Find(*models, "latest")), ElementsAre(3));
  EXPECT_THAT(Find(*models, "latest")->present, ElementsAre(1, 2, 3));
  EXPECT_THAT(Selected(*Find(*models, "two")), ElementsAre(4, 7));
  EXPECT_THAT(Selected(*Find(*models, "all")), ElementsAre(2, 3));
  EXPECT_THAT(Selected(*Find(*models, "specific")), ElementsAre(1, 3));
  EXPECT_TRUE(Find(*models, "specific")->status.ok());
  // A listed version without a directory: not loaded, one warning for all
  // scans.
  EXPECT_EQ(
      log.Count({"event=version_not_found", "model=specific", "version=8"}), 1);
  const ScannedModel& none = *Find(*models, "nothing");
  EXPECT_EQ(none.status.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(none.status.message(),
              HasSubstr("version_policy.specific.versions [5] names none of "
                        "the version directories present (1)"));
  EXPECT_THAT(none.selected, IsEmpty());
}

TEST(RepositoryScannerTest, ConfigErrorsAreTheModelsStatus) {
  LiveRepository repo("scan_config");
  RandomModel m = Tiny("broken");
  repo.AddModel(m.config, {{1, m.tensors}, {2, m.tensors}});
  repo.ReplaceFile("broken/config.pbtxt", "name: \"broken\" layers { units: ");
  RandomModel zero = Tiny("zero");
  zero.config.mutable_version_policy()->mutable_latest()->set_num_versions(0);
  repo.AddModel(zero.config, {{1, zero.tensors}});
  fs::create_directories(repo.path() / "empty");
  RepositoryScanner scanner(repo.path());
  auto models = scanner.ScanAll();
  ASSERT_TRUE(models.ok());
  const ScannedModel& broken = *Find(*models, "broken");
  EXPECT_EQ(broken.status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(broken.status.message(), HasSubstr("broken/config.pbtxt"));
  EXPECT_THAT(broken.present, ElementsAre(1, 2));
  EXPECT_THAT(broken.selected, IsEmpty());
  EXPECT_THAT(Find(*models, "zero")->status.message(),
              HasSubstr("version_policy.latest.num_versions is 0"));
  EXPECT_THAT(Find(*models, "empty")->status.message(),
              HasSubstr("config.pbtxt: not found"));
}

TEST(RepositoryScannerTest, FingerprintsChangeWhenFilesChange) {
  LiveRepository repo("scan_fingerprint");
  RandomModel m = Tiny("m");
  m.config.mutable_version_policy()->mutable_all();
  repo.AddModel(m.config, {{1, m.tensors}, {2, m.tensors}});
  RepositoryScanner scanner(repo.path());
  const auto scan = [&] {
    auto model = scanner.ScanModel("m");
    EXPECT_TRUE(model.ok()) << model.status();
    EXPECT_EQ(model->selected.size(), 2u);
    return std::make_pair(model->selected[0].fingerprint,
                          model->selected[1].fingerprint);
  };
  const auto before = scan();
  // config.pbtxt, then the version's weight file.
  ASSERT_EQ(before.first.size(), 2u);
  EXPECT_EQ(before.first[0].name, "config.pbtxt");
  EXPECT_EQ(before.first[1].name, "1/model.safetensors");
  EXPECT_GT(before.first[0].size, 0u);
  EXPECT_EQ(scan(), before);  // Nothing changed.

  // The same bytes under a new inode (an atomic re-publish) count.
  repo.ReplaceWeights("m", 2, m.tensors);
  const auto weights = scan();
  EXPECT_EQ(weights.first, before.first);
  EXPECT_NE(weights.second, before.second);

  // A new file in a version directory.
  WriteFile(repo.ModelDir("m") / "1" / "extra.npy", "x");
  const auto extra = scan();
  EXPECT_NE(extra.first, weights.first);
  EXPECT_EQ(extra.second, weights.second);

  // config.pbtxt belongs to every version.
  repo.ReplaceConfig(m.config);
  const auto config = scan();
  EXPECT_NE(config.first, extra.first);
  EXPECT_NE(config.second, extra.second);
}

TEST(RelativeToRepositoryTest, PathsBecomeRelativeAndTheRootIsNamed) {
  EXPECT_EQ(RelativeToRepository("/srv/models/digits/1/model.safetensors: "
                                 "tensor 'fc0.weight' is truncated",
                                 "/srv/models"),
            "digits/1/model.safetensors: tensor 'fc0.weight' is truncated");
  EXPECT_EQ(RelativeToRepository("the model repository '/srv/models' has no "
                                 "directory 'x'; see /srv/models/x",
                                 "/srv/models/"),
            "the model repository '<repository>' has no directory 'x'; see x");
  // Other paths, and messages without any, stay as they are.
  EXPECT_EQ(RelativeToRepository("/etc/passwd: no", "/srv/models"),
            "/etc/passwd: no");
  EXPECT_EQ(RelativeToRepository("fine", "/srv/models"), "fine");
  EXPECT_EQ(RelativeToRepository("/a/b", ""), "/a/b");
}

}  // namespace
}  // namespace nnserve::server
