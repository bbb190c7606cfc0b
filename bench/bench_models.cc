#include "bench/bench_models.h"

#include <cmath>
#include <system_error>

#include "absl/strings/str_cat.h"
#include "engine/repository.h"

namespace nnserve::bench {
namespace {

// splitmix64: fast, deterministic, good enough for benchmark weights
// (the 4096-wide model has ~50 M of them).
class Random {
 public:
  explicit Random(uint64_t seed) : state_(seed) {}
  uint64_t Next() {
    uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  // Uniform in [-limit, limit).
  float Uniform(float limit) {
    const float unit = static_cast<float>(Next() >> 40) * 0x1.0p-24f;
    return (2.0f * unit - 1.0f) * limit;
  }

 private:
  uint64_t state_;
};

}  // namespace

int64_t BenchModel::FlopsPerRow() const {
  int64_t flops = 0;
  for (const engine::LayerSpec& layer : spec->layers) {
    flops += 2 * layer.input_size * layer.units;
  }
  return flops;
}

std::string BenchModel::ShapeString() const {
  std::string text = absl::StrCat(spec->input_size);
  for (const engine::LayerSpec& layer : spec->layers) {
    absl::StrAppend(&text, "→", layer.units, " ",
                    std::string(engine::ActivationName(layer.activation)));
  }
  return text;
}

int64_t BenchModel::SubnormalParameters() const {
  int64_t count = 0;
  for (const engine::LayerSpec& layer : spec->layers) {
    for (const std::vector<float>* values : {&layer.weight, &layer.bias}) {
      for (float x : *values) {
        if (std::fpclassify(x) == FP_SUBNORMAL) ++count;
      }
    }
  }
  return count;
}

absl::StatusOr<std::shared_ptr<const engine::Model>>
BenchModel::CreateEngineModel(const engine::EngineOptions& options) const {
  if (!model_dir.empty()) {
    return engine::LoadModel(model_dir, version, options);
  }
  return engine::Model::Create(*spec, /*version=*/1, options);
}

BenchModel GenerateModel(const std::string& name, int64_t input_size,
                         const std::vector<GeneratedLayer>& layers,
                         uint64_t seed) {
  auto spec = std::make_shared<engine::ModelSpec>();
  spec->name = name;
  spec->input_name = "input";
  spec->input_size = input_size;
  spec->output_name = "output";
  Random random(seed);
  int64_t in = input_size;
  for (size_t i = 0; i < layers.size(); ++i) {
    engine::LayerSpec layer;
    layer.name = absl::StrCat("fc", i + 1);
    layer.input_size = in;
    layer.units = layers[i].units;
    layer.activation = layers[i].activation;
    const float limit = std::sqrt(6.0f / static_cast<float>(in));
    layer.weight.resize(static_cast<size_t>(in * layer.units));
    for (float& w : layer.weight) w = random.Uniform(limit);
    layer.bias.resize(static_cast<size_t>(layer.units));
    for (float& b : layer.bias) b = random.Uniform(0.1f);
    in = layer.units;
    spec->layers.push_back(std::move(layer));
  }
  BenchModel model;
  model.name = name;
  model.source =
      absl::StrCat("generated in memory: random weights, seed ", seed);
  model.spec = std::move(spec);
  return model;
}

absl::StatusOr<BenchModel> LoadOrGenerateModel(
    const std::filesystem::path& repository, const std::string& name,
    int64_t input_size, const std::vector<GeneratedLayer>& fallback_layers,
    uint64_t seed) {
  const std::filesystem::path dir = repository / name;
  std::error_code error;
  if (!std::filesystem::is_directory(dir, error)) {
    BenchModel model = GenerateModel(name, input_size, fallback_layers, seed);
    model.source = absl::StrCat(dir.string(), " not found; ", model.source,
                                " (same shapes)");
    return model;
  }
  absl::StatusOr<v1::ModelConfig> config = engine::ReadModelConfig(dir);
  if (!config.ok()) return config.status();
  absl::StatusOr<std::vector<int64_t>> versions = engine::ListVersions(dir);
  if (!versions.ok()) return versions.status();
  const int64_t version = versions->back();
  const std::filesystem::path version_dir = dir / std::to_string(version);
  absl::StatusOr<formats::TensorMap> tensors =
      engine::ReadTensors(version_dir, *config);
  if (!tensors.ok()) return tensors.status();
  absl::StatusOr<engine::ModelSpec> spec = engine::BuildModelSpec(
      *config, *std::move(tensors), version_dir.string());
  if (!spec.ok()) return spec.status();

  BenchModel model;
  model.name = name;
  model.source = absl::StrCat("loaded from ", dir.string(), " version ",
                              version, " (engine via LoadModel)");
  model.model_dir = dir;
  model.version = version;
  model.spec = std::make_shared<const engine::ModelSpec>(*std::move(spec));
  return model;
}

}  // namespace nnserve::bench
