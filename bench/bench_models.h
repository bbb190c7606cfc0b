// The models engine_bench measures: each is a ModelSpec (for the raw oneDNN
// chain and the FLOP count) plus a way to build the engine's Model from the
// same weights — LoadModel for a model read from the repository, or
// Model::Create for one generated in memory with fixed-seed random weights.
//
// A BenchModel is an immutable value after construction (the spec is
// shared, read-only); the functions here are stateless and thread-safe.
#ifndef NNSERVE_BENCH_BENCH_MODELS_H_
#define NNSERVE_BENCH_BENCH_MODELS_H_

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/model.h"
#include "engine/model_spec.h"

namespace nnserve::bench {

struct BenchModel {
  std::string name;
  // Where the weights came from, for the output (e.g. "models/digits
  // version 1" or "generated: random weights, seed 7").
  std::string source;
  // Set when loaded from a repository; empty for generated models.
  std::filesystem::path model_dir;
  int64_t version = 0;
  std::shared_ptr<const engine::ModelSpec> spec;

  // 2 * sum over layers of input_size * units: multiply-adds per row x 2.
  int64_t FlopsPerRow() const;
  // "64→32 RELU→10 SOFTMAX".
  std::string ShapeString() const;
  // Weights and biases that are subnormal floats (0 < |x| < 2^-126): on
  // this CPU every FMA touching one takes a slow path, so a handful of them
  // can make a forward several times slower.
  int64_t SubnormalParameters() const;
  // Builds the engine's model from the same weights the spec holds:
  // engine::LoadModel for repository models, Model::Create otherwise.
  absl::StatusOr<std::shared_ptr<const engine::Model>> CreateEngineModel(
      const engine::EngineOptions& options) const;
};

// One dense layer of a generated model: output width and activation.
struct GeneratedLayer {
  int64_t units = 0;
  engine::Activation activation = engine::Activation::kRelu;
};

// A model with deterministic random weights (uniform, He-scaled so that
// ReLU stacks keep their activations in range) and small random biases.
BenchModel GenerateModel(const std::string& name, int64_t input_size,
                         const std::vector<GeneratedLayer>& layers,
                         uint64_t seed);

// Loads `<repository>/<name>` (its highest version) if that directory
// exists; otherwise generates a model with the given shapes and says so in
// `source`. A directory that exists but fails to load is an error, not a
// fallback.
absl::StatusOr<BenchModel> LoadOrGenerateModel(
    const std::filesystem::path& repository, const std::string& name,
    int64_t input_size, const std::vector<GeneratedLayer>& fallback_layers,
    uint64_t seed);

}  // namespace nnserve::bench

#endif  // NNSERVE_BENCH_BENCH_MODELS_H_
