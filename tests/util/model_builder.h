// Random dense models for tests: a ModelConfig plus its TensorMap, built
// from a layer list with a seeded std::mt19937 and initialised like real
// networks (uniform in +-1/sqrt(in)), and writers that lay a model out as a
// repository directory (config.pbtxt + safetensors or .npy files).
// Stateless functions; thread-safe (writers touch only the given paths).
#ifndef NNSERVE_TESTS_UTIL_MODEL_BUILDER_H_
#define NNSERVE_TESTS_UTIL_MODEL_BUILDER_H_

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "engine/model_spec.h"
#include "formats/tensor.h"
#include "nnserve/v1/model_config.pb.h"

namespace nnserve::testing {

struct LayerDef {
  LayerDef(int64_t units, engine::Activation activation, bool bias = true,
           std::optional<float> alpha = std::nullopt)
      : units(units), activation(activation), bias(bias), alpha(alpha) {}

  int64_t units = 0;
  engine::Activation activation = engine::Activation::kIdentity;
  bool bias = true;
  std::optional<float> alpha;  // Written to the config only when set.
};

struct RandomModel {
  v1::ModelConfig config;
  formats::TensorMap tensors;  // Stored in the config's weight layout.
};

// Layers are named "fc0", "fc1", ...; tensors "fc<i>.weight" and
// "fc<i>.bias"; the input "x", the output "y". Weights and biases are
// uniform in [-1/sqrt(in), 1/sqrt(in)].
RandomModel BuildRandomModel(std::string_view name, int64_t input_size,
                             const std::vector<LayerDef>& layers,
                             engine::WeightLayout layout, uint32_t seed);

enum class FileFormat { kSafetensors, kNpy };

// Writes <repository>/<config.name>/config.pbtxt and the tensors into
// <repository>/<config.name>/<version>/ as model.safetensors or one
// <tensor>.npy per tensor, stored as `dtype`. Throws std::runtime_error on
// I/O failure. Returns the model directory.
std::filesystem::path WriteModelDir(const std::filesystem::path& repository,
                                    const RandomModel& model, int64_t version,
                                    FileFormat format, formats::DType dtype);

// Writes only the tensors of `model` into `version_dir`.
void WriteTensorFiles(const std::filesystem::path& version_dir,
                      const formats::TensorMap& tensors, FileFormat format,
                      formats::DType dtype);

// A fresh empty directory under the system temp dir, unique per call.
std::filesystem::path MakeTempDir(std::string_view prefix);

// Deletes a directory tree on destruction.
class ScopedTempDir {
 public:
  explicit ScopedTempDir(std::string_view prefix = "nnserve_test")
      : path_(MakeTempDir(prefix)) {}
  ~ScopedTempDir();
  ScopedTempDir(const ScopedTempDir&) = delete;
  ScopedTempDir& operator=(const ScopedTempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

// `count` values uniform in [-scale, scale].
std::vector<float> RandomValues(size_t count, float scale, uint32_t seed);

}  // namespace nnserve::testing

#endif  // NNSERVE_TESTS_UTIL_MODEL_BUILDER_H_
