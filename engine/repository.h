// The on-disk model repository:
//   <repository>/<model-name>/config.pbtxt
//   <repository>/<model-name>/<version>/model.safetensors | <tensor>.npy ...
// Functions here read directories and files and hand the bytes to the
// in-memory parsers. Stateless; thread-safe.
#ifndef NNSERVE_ENGINE_REPOSITORY_H_
#define NNSERVE_ENGINE_REPOSITORY_H_

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
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
// matches the directory name.
absl::StatusOr<v1::ModelConfig> ReadModelConfig(
    const std::filesystem::path& model_dir);

// Reads the tensors of <model_dir>/<version>/: model.safetensors, or one
// .npy per tensor name the config references (anything else is an error).
absl::StatusOr<TensorMap> ReadTensors(const std::filesystem::path& version_dir,
                                      const v1::ModelConfig& config);

// Loads one version (0 = the highest) of the model in `model_dir`: config,
// tensors, validation, oneDNN plan. A model that fails any check is not
// loaded at all; the error names the file, tensor, and what was expected.
absl::StatusOr<std::shared_ptr<const Model>> LoadModel(
    const std::filesystem::path& model_dir, int64_t version,
    const EngineOptions& options);

}  // namespace nnserve::engine

#endif  // NNSERVE_ENGINE_REPOSITORY_H_
