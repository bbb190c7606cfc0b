// The on-disk model repository:
//   <repository>/<model-name>/config.pbtxt
//   <repository>/<model-name>/<version>/model.safetensors | <tensor>.npy ...
// Functions here read directories and files and hand the bytes to the
// in-memory parsers. A server reads a model in one pass: ReadModelDirectory
// (config.pbtxt once, and the version list), then LoadVersion per version
// with that config. Stateless; thread-safe.
#ifndef NNSERVE_ENGINE_REPOSITORY_H_
#define NNSERVE_ENGINE_REPOSITORY_H_

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/model.h"
#include "nnserve/v1/model_config.pb.h"

namespace nnserve::engine {

// Model directory names in `repository`, sorted. Entries that are not
// directories are ignored; a directory with an invalid model name is an
// InvalidArgument error naming it.
absl::StatusOr<std::vector<std::string>> ListModelNames(
    const std::filesystem::path& repository);

// Version numbers (positive integer subdirectories) of a model, ascending.
// NotFound if there are none.
absl::StatusOr<std::vector<int64_t>> ListVersions(
    const std::filesystem::path& model_dir);

// Reads and parses <model_dir>/config.pbtxt and checks that its name
// matches the directory name, the config itself (ValidateModelConfig) and
// its version policy (ValidateVersionPolicy).
absl::StatusOr<v1::ModelConfig> ReadModelConfig(
    const std::filesystem::path& model_dir);

// The checks of ReadModelConfig on config text already in memory (what
// ReadModelConfig runs after reading the file; the fuzz harness drives it
// directly): parse, name == `expected_name`, ValidateModelConfig,
// ValidateVersionPolicy. `source` names the config in messages.
absl::StatusOr<v1::ModelConfig> ParseValidatedModelConfig(
    std::string_view text, std::string_view source,
    std::string_view expected_name);

// Checks a version policy: latest.num_versions >= 1; specific lists at
// least one version, each positive. `source` names the config in messages.
absl::Status ValidateVersionPolicy(const v1::ModelVersionPolicy& policy,
                                   std::string_view source);

// A model directory as read in one pass.
struct ModelDirectory {
  v1::ModelConfig config;         // Validated (ReadModelConfig).
  std::vector<int64_t> versions;  // Version directories, ascending, >= 1.
};

// ReadModelConfig and ListVersions of `model_dir` (config.pbtxt read once).
absl::StatusOr<ModelDirectory> ReadModelDirectory(
    const std::filesystem::path& model_dir);

// One loaded version and the config it was built from (its batching
// settings and version policy travel with it).
struct LoadedVersion {
  std::shared_ptr<const Model> model;
  v1::ModelConfig config;
};

// Loads <model_dir>/<version>/ with `config` (from ReadModelDirectory, not
// read again): tensors, validation, oneDNN plans, warm-up forward pass. A
// version that fails any check is not loaded at all; the error names the
// file, tensor, and what was expected.
absl::StatusOr<LoadedVersion> LoadVersion(
    const std::filesystem::path& model_dir, v1::ModelConfig config,
    int64_t version, const EngineOptions& options);

// Reads the tensors of <model_dir>/<version>/: model.safetensors, or one
// .npy per tensor name the config references (anything else is an error).
absl::StatusOr<formats::TensorMap> ReadTensors(
    const std::filesystem::path& version_dir, const v1::ModelConfig& config);

// Loads one version (0 = the highest directory, whatever the version
// policy) of the model in `model_dir`: ReadModelDirectory + LoadVersion.
// For the offline commands.
absl::StatusOr<std::shared_ptr<const Model>> LoadModel(
    const std::filesystem::path& model_dir, int64_t version,
    const EngineOptions& options);

}  // namespace nnserve::engine

#endif  // NNSERVE_ENGINE_REPOSITORY_H_
