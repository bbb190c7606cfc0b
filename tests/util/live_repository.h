// LiveRepository: a model repository in a temporary directory that a test
// changes while a server watches it, the way the README tells users to
// publish models: every file and directory is first written completely
// under a staging directory beside the repository (same filesystem) and
// then moved into place with one rename(2), so a scanner never sees a
// half-written file. Removing a model renames it out of the repository
// before deleting it.
//
// The object owns the temporary root (repository/ and staging/ inside it)
// and deletes it on destruction. Methods throw std::runtime_error naming the
// path on I/O failure (test helpers, like tensor_files.h). Not thread-safe:
// use it from the test body only.
#ifndef NNSERVE_TESTS_UTIL_LIVE_REPOSITORY_H_
#define NNSERVE_TESTS_UTIL_LIVE_REPOSITORY_H_

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <string_view>

#include "formats/tensor.h"
#include "nnserve/v1/model_config.pb.h"
#include "tests/util/model_builder.h"

namespace nnserve::testing {

// The weight file every version written here holds.
inline constexpr char kWeightFile[] = "model.safetensors";

class LiveRepository {
 public:
  explicit LiveRepository(std::string_view prefix = "nnserve_live_repo");
  LiveRepository(const LiveRepository&) = delete;
  LiveRepository& operator=(const LiveRepository&) = delete;

  // The repository directory (for --model-repository).
  const std::filesystem::path& path() const { return repository_; }
  // <repository>/<model>.
  std::filesystem::path ModelDir(std::string_view model) const;

  // Publishes a whole model directory at once: config.pbtxt (`config`,
  // whose name is the directory name) and one version directory per entry
  // of `versions` holding kWeightFile (f32 safetensors).
  void AddModel(const v1::ModelConfig& config,
                const std::map<int64_t, formats::TensorMap>& versions);

  // Publishes one version directory <model>/<version>/ holding kWeightFile
  // with `tensors`. The model directory must exist.
  void AddVersion(std::string_view model, int64_t version,
                  const formats::TensorMap& tensors);

  // Publishes one version directory holding exactly `files` (file name →
  // bytes), e.g. a truncated weight file.
  void AddVersionFiles(std::string_view model, int64_t version,
                       const std::map<std::string, std::string>& files);

  // Replaces (or creates) the file at `relative` (to the repository) with
  // `bytes` by renaming a complete new file over it: the file gets a new
  // inode, as when a deployment tool swaps it.
  void ReplaceFile(const std::filesystem::path& relative,
                   std::string_view bytes);

  // Replaces <model>/<version>/kWeightFile with `tensors` (ReplaceFile).
  void ReplaceWeights(std::string_view model, int64_t version,
                      const formats::TensorMap& tensors);

  // Replaces <model>/config.pbtxt with `config` (ReplaceFile).
  void ReplaceConfig(const v1::ModelConfig& config);

  // Moves <model>/ out of the repository in one rename, then deletes it.
  void RemoveModel(std::string_view model);

  // A fresh, empty directory under staging/ (not visible to the server),
  // for tests that assemble something themselves before a rename.
  std::filesystem::path NewStagingDir();

 private:
  ScopedTempDir root_;
  std::filesystem::path repository_;
  std::filesystem::path staging_;
  int64_t next_staging_id_ = 0;
};

// config.pbtxt text for `config` (protobuf text format).
std::string ConfigText(const v1::ModelConfig& config);

// rename(2) `from` to `to`, throwing std::runtime_error naming both on
// failure.
void RenameOrThrow(const std::filesystem::path& from,
                   const std::filesystem::path& to);

}  // namespace nnserve::testing

#endif  // NNSERVE_TESTS_UTIL_LIVE_REPOSITORY_H_
