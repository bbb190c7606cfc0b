// Random test models and their on-disk repository layout.
#include "tests/util/model_builder.h"

#include <unistd.h>

#include <atomic>
#include <cmath>
#include <random>
#include <stdexcept>
#include <system_error>

#include "absl/strings/str_cat.h"
#include "google/protobuf/text_format.h"
#include "tests/util/tensor_files.h"

namespace nnserve::testing {

namespace fs = std::filesystem;

std::vector<float> RandomValues(size_t count, float scale, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(-scale, scale);
  std::vector<float> values(count);
  for (float& v : values) v = dist(rng);
  return values;
}

RandomModel BuildRandomModel(std::string_view name, int64_t input_size,
                             const std::vector<LayerDef>& layers,
                             engine::WeightLayout layout, uint32_t seed) {
  RandomModel model;
  v1::ModelConfig& config = model.config;
  config.set_name(std::string(name));
  config.mutable_input()->set_name("x");
  config.mutable_input()->set_size(input_size);
  config.mutable_output()->set_name("y");
  config.set_weight_layout(engine::ToConfigWeightLayout(layout));
  int64_t in = input_size;
  for (size_t i = 0; i < layers.size(); ++i) {
    const LayerDef& def = layers[i];
    v1::LayerConfig* layer = config.add_layers();
    const std::string layer_name = absl::StrCat("fc", i);
    layer->set_name(layer_name);
    layer->set_units(def.units);
    layer->set_activation(engine::ToConfigActivation(def.activation));
    if (def.alpha.has_value()) layer->set_alpha(*def.alpha);
    const float scale = 1.0f / std::sqrt(static_cast<float>(in));
    formats::Tensor weight;
    weight.shape = layout == engine::WeightLayout::kOutIn
                       ? std::vector<int64_t>{def.units, in}
                       : std::vector<int64_t>{in, def.units};
    weight.values = RandomValues(static_cast<size_t>(def.units * in), scale,
                                 seed * 7919u + static_cast<uint32_t>(i) * 2);
    layer->set_weight(layer_name + ".weight");
    model.tensors.emplace(layer_name + ".weight", std::move(weight));
    if (def.bias) {
      formats::Tensor bias;
      bias.shape = {def.units};
      bias.values =
          RandomValues(static_cast<size_t>(def.units), scale,
                       seed * 7919u + static_cast<uint32_t>(i) * 2 + 1);
      layer->set_bias(layer_name + ".bias");
      model.tensors.emplace(layer_name + ".bias", std::move(bias));
    }
    in = def.units;
  }
  return model;
}

void WriteTensorFiles(const fs::path& version_dir,
                      const formats::TensorMap& tensors, FileFormat format,
                      formats::DType dtype) {
  if (format == FileFormat::kSafetensors) {
    WriteFile(version_dir / "model.safetensors",
              SafetensorsBytes(tensors, dtype));
    return;
  }
  for (const auto& [name, tensor] : tensors) {
    WriteFile(version_dir / (name + ".npy"), NpyBytes(tensor, dtype));
  }
}

fs::path WriteModelDir(const fs::path& repository, const RandomModel& model,
                       int64_t version, FileFormat format,
                       formats::DType dtype) {
  const fs::path model_dir = repository / model.config.name();
  std::string text;
  if (!google::protobuf::TextFormat::PrintToString(model.config, &text)) {
    throw std::runtime_error("cannot print config of " + model.config.name());
  }
  WriteFile(model_dir / "config.pbtxt", text);
  WriteTensorFiles(model_dir / std::to_string(version), model.tensors, format,
                   dtype);
  return model_dir;
}

fs::path MakeTempDir(std::string_view prefix) {
  static std::atomic<int> counter{0};
  const fs::path dir =
      fs::temp_directory_path() /
      absl::StrCat(std::string(prefix), "_", ::getpid(), "_", counter++);
  std::error_code ec;
  fs::remove_all(dir, ec);
  if (!fs::create_directories(dir, ec) || ec) {
    throw std::runtime_error("cannot create temp dir " + dir.string());
  }
  return dir;
}

ScopedTempDir::~ScopedTempDir() {
  std::error_code ec;
  fs::remove_all(path_, ec);
}

}  // namespace nnserve::testing
