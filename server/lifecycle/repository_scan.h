// RepositoryScanner: reads what a model repository holds now — the model
// directories, each one's config (read once) and the versions its version
// policy selects, with a fingerprint per version to tell a changed version
// from an unchanged one. TF Serving's "source": it knows nothing about
// loading.
//
// Tolerant of what real repositories contain: hidden entries (a name
// starting with '.', e.g. `.git`, or Kubernetes' `..data` and
// `..2026_12_03_...` links from ConfigMap and volume mounts) and
// `lost+found` are skipped, with one log line per name per scanner (not
// per scan); plain files are ignored; a directory whose name is not a
// valid model name is reported as a model whose status says so (it never
// fails the scan).
//
// Fingerprint of a version: (name, size, mtime, inode) of config.pbtxt and
// of every entry of the version directory, following symbolic links. The
// files are stat'ed before they are read, so a change during a load shows
// up as a changed fingerprint at the next scan.
//
// Thread-safe (the once-per-name log memory is the only state).
#ifndef NNSERVE_SERVER_LIFECYCLE_REPOSITORY_SCAN_H_
#define NNSERVE_SERVER_LIFECYCLE_REPOSITORY_SCAN_H_

#include <cstdint>
#include <filesystem>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "nnserve/v1/model_config.pb.h"

namespace nnserve::server {

// The identity of one file for change detection.
struct FileStamp {
  std::string name;  // Relative to the model directory ("1/model.safetensors").
  uintmax_t size = 0;
  int64_t mtime_ns = 0;
  uint64_t inode = 0;
  bool operator==(const FileStamp&) const = default;
};
// config.pbtxt's stamp, then the version directory's entries by name;
// equal fingerprints = unchanged files.
using Fingerprint = std::vector<FileStamp>;

struct ScannedVersion {
  int64_t version = 0;
  Fingerprint fingerprint;
};

struct ScannedModel {
  std::string name;  // The directory name.
  std::filesystem::path dir;
  // OK, or why no version of the model can be loaded (invalid directory
  // name, unreadable or invalid config, no version directory, a policy
  // that selects none of them).
  absl::Status status;
  bool invalid_name = false;  // status says the name is invalid.
  v1::ModelConfig config;     // Valid when status is OK.
  // Every version directory present, ascending (also when status is not
  // OK); `present_known` is false if the model directory could not be
  // listed (then `present` says nothing).
  std::vector<int64_t> present;
  bool present_known = false;
  // The versions the policy selects, ascending (empty unless status is OK).
  std::vector<ScannedVersion> selected;
};

// The versions `policy` selects among `present` (ascending): latest N, all,
// or the specific ones that are present. Ascending result.
std::vector<int64_t> SelectVersions(const v1::ModelVersionPolicy& policy,
                                    const std::vector<int64_t>& present);

class RepositoryScanner {
 public:
  explicit RepositoryScanner(std::filesystem::path repository);
  RepositoryScanner(const RepositoryScanner&) = delete;
  RepositoryScanner& operator=(const RepositoryScanner&) = delete;

  const std::filesystem::path& repository() const { return repository_; }

  // Every model directory, sorted by name. NotFound if the repository is
  // not a directory; Internal if it cannot be listed.
  absl::StatusOr<std::vector<ScannedModel>> ScanAll();

  // The model directory `name`. NotFound (naming the repository) if there
  // is no such directory or the name is one the scan skips.
  absl::StatusOr<ScannedModel> ScanModel(std::string_view name);

 private:
  ScannedModel Scan(const std::string& name);
  // True the first time `key` is seen by this scanner.
  bool FirstTime(std::string key);

  const std::filesystem::path repository_;
  absl::Mutex mutex_;
  std::set<std::string> logged_ ABSL_GUARDED_BY(mutex_);
};

// `message` as callers may see it: every path inside `repository` is made
// relative to it ("/srv/models/digits/1/model.safetensors: ..." becomes
// "digits/1/model.safetensors: ...") and the repository itself is called
// "<repository>", so errors sent over the API never reveal where the
// server keeps its files. Logs keep the full paths.
std::string RelativeToRepository(absl::string_view message,
                                 const std::filesystem::path& repository);

}  // namespace nnserve::server

#endif  // NNSERVE_SERVER_LIFECYCLE_REPOSITORY_SCAN_H_
