#include "server/lifecycle/repository_scan.h"

#include <sys/stat.h>

#include <algorithm>
#include <system_error>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "common/str_util.h"
#include "engine/model_spec.h"
#include "engine/repository.h"
#include "server/observability/logging.h"
#include "spdlog/spdlog.h"

namespace nnserve::server {
namespace {

namespace fs = std::filesystem;

constexpr char kConfigFile[] = "config.pbtxt";

// Entries a scan never treats as models: hidden ones (".git", Kubernetes'
// "..data" and "..<timestamp>" links) and a file system's lost+found.
std::string_view SkipReason(std::string_view name) {
  if (name.starts_with('.')) return "hidden";
  if (name == "lost+found") return "lost+found";
  return {};
}

// Appends the stamp of `path` (following symbolic links) named `name`; a
// file that vanished in between is left out (its absence changes the
// fingerprint).
void AddStamp(const fs::path& path, std::string name, Fingerprint* out) {
  struct stat info;
  if (::stat(path.c_str(), &info) != 0) return;
  out->push_back(FileStamp{
      .name = std::move(name),
      .size = static_cast<uintmax_t>(info.st_size),
      .mtime_ns = static_cast<int64_t>(info.st_mtim.tv_sec) * 1000000000 +
                  info.st_mtim.tv_nsec,
      .inode = static_cast<uint64_t>(info.st_ino)});
}

// Stamps of every entry of <model_dir>/<version>/ (names "<version>/<f>").
void AddVersionStamps(const fs::path& model_dir, int64_t version,
                      Fingerprint* out) {
  const std::string prefix = std::to_string(version);
  std::error_code ec;
  std::vector<std::string> names;
  for (fs::directory_iterator it(model_dir / prefix, ec), end; !ec && it != end;
       it.increment(ec)) {
    names.push_back(it->path().filename().string());
  }
  std::sort(names.begin(), names.end());
  for (std::string& name : names) {
    AddStamp(model_dir / prefix / name, absl::StrCat(prefix, "/", name), out);
  }
}

}  // namespace

std::vector<int64_t> SelectVersions(const v1::ModelVersionPolicy& policy,
                                    const std::vector<int64_t>& present) {
  std::vector<int64_t> selected;
  switch (policy.policy_choice_case()) {
    case v1::ModelVersionPolicy::kAll:
      return present;
    case v1::ModelVersionPolicy::kSpecific:
      for (int64_t version : present) {
        const auto& wanted = policy.specific().versions();
        if (std::find(wanted.begin(), wanted.end(), version) != wanted.end()) {
          selected.push_back(version);
        }
      }
      return selected;
    case v1::ModelVersionPolicy::kLatest:
    case v1::ModelVersionPolicy::POLICY_CHOICE_NOT_SET: {
      const size_t n = policy.has_latest()
                           ? static_cast<size_t>(policy.latest().num_versions())
                           : 1;
      const size_t first = present.size() > n ? present.size() - n : 0;
      selected.assign(present.begin() + static_cast<ptrdiff_t>(first),
                      present.end());
      return selected;
    }
  }
  return selected;
}

RepositoryScanner::RepositoryScanner(fs::path repository)
    : repository_(std::move(repository)) {}

bool RepositoryScanner::FirstTime(std::string key) {
  absl::MutexLock lock(&mutex_);
  return logged_.insert(std::move(key)).second;
}

absl::StatusOr<std::vector<ScannedModel>> RepositoryScanner::ScanAll() {
  std::error_code ec;
  if (!fs::is_directory(repository_, ec)) {
    return absl::NotFoundError(
        absl::StrCat(repository_.string(),
                     ": model repository not found (expected a "
                     "directory of model directories)"));
  }
  std::vector<std::string> names;
  for (fs::directory_iterator it(repository_, ec), end; !ec && it != end;
       it.increment(ec)) {
    std::error_code type_ec;
    if (!it->is_directory(type_ec)) continue;
    std::string name = it->path().filename().string();
    if (std::string_view reason = SkipReason(name); !reason.empty()) {
      if (FirstTime(absl::StrCat("skip/", name))) {
        spdlog::info(
            "event=repository_entry_skipped repository={} name={} reason={}",
            LogQuote(repository_.string()), LogQuote(name), reason);
      }
      continue;
    }
    names.push_back(std::move(name));
  }
  if (ec) {
    return absl::InternalError(absl::StrCat(
        repository_.string(), ": cannot list directory: ", ec.message()));
  }
  std::sort(names.begin(), names.end());
  std::vector<ScannedModel> models;
  models.reserve(names.size());
  for (const std::string& name : names) models.push_back(Scan(name));
  return models;
}

absl::StatusOr<ScannedModel> RepositoryScanner::ScanModel(
    std::string_view name) {
  std::error_code ec;
  if (name.empty() || name.find('/') != std::string_view::npos ||
      !SkipReason(name).empty() ||
      !fs::is_directory(repository_ / std::string(name), ec)) {
    return absl::NotFoundError(absl::StrCat(
        "model '", Clip(name), "' not found: the model repository '",
        repository_.string(), "' has no directory of that name"));
  }
  return Scan(std::string(name));
}

ScannedModel RepositoryScanner::Scan(const std::string& name) {
  ScannedModel model;
  model.name = name;
  model.dir = repository_ / name;
  if (!engine::IsValidModelName(name)) {
    model.invalid_name = true;
    model.status = absl::InvalidArgumentError(
        absl::StrCat(model.dir.string(), ": '", name,
                     "' is not a valid model name, expected "
                     "[A-Za-z0-9][A-Za-z0-9_.-]{0,63}"));
    return model;
  }
  // Stamped before it is read: a change after this shows up next scan.
  Fingerprint config_stamp;
  AddStamp(model.dir / kConfigFile, kConfigFile, &config_stamp);
  absl::StatusOr<engine::ModelDirectory> directory =
      engine::ReadModelDirectory(model.dir);
  if (!directory.ok()) {
    model.status = directory.status();
    auto present = engine::ListVersions(model.dir);
    if (present.ok()) model.present = *std::move(present);
    // ListVersions also fails for "no version directory": known then too.
    std::error_code ec;
    fs::directory_iterator listable(model.dir, ec);
    model.present_known = present.ok() || !ec;
    return model;
  }
  model.config = std::move(directory->config);
  model.present = std::move(directory->versions);
  model.present_known = true;
  const std::vector<int64_t> selected =
      SelectVersions(model.config.version_policy(), model.present);
  if (model.config.version_policy().has_specific()) {
    for (int64_t wanted : model.config.version_policy().specific().versions()) {
      if (!std::binary_search(model.present.begin(), model.present.end(),
                              wanted) &&
          FirstTime(absl::StrCat("missing/", name, "/", wanted))) {
        spdlog::warn(
            "event=version_not_found model={} version={} reason={}", name,
            wanted,
            "version_policy.specific lists it but there is no such version "
            "directory");
      }
    }
  }
  if (selected.empty()) {
    model.status = absl::NotFoundError(absl::StrCat(
        (model.dir / kConfigFile).string(),
        ": version_policy.specific.versions [",
        absl::StrJoin(model.config.version_policy().specific().versions(),
                      ", "),
        "] names none of the version directories present (",
        absl::StrJoin(model.present, ", "), ")"));
    return model;
  }
  for (int64_t version : selected) {
    ScannedVersion scanned;
    scanned.version = version;
    scanned.fingerprint = config_stamp;
    AddVersionStamps(model.dir, version, &scanned.fingerprint);
    model.selected.push_back(std::move(scanned));
  }
  return model;
}

std::string RelativeToRepository(absl::string_view message,
                                 const fs::path& repository) {
  std::string root = repository.lexically_normal().string();
  while (root.size() > 1 && root.back() == '/') root.pop_back();
  if (root.empty() || root == "/" || root == ".") return std::string(message);
  // Inside paths first, then the bare repository path.
  return absl::StrReplaceAll(
      message, {{absl::StrCat(root, "/"), ""}, {root, "<repository>"}});
}

}  // namespace nnserve::server
