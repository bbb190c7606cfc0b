// libFuzzer harness for the config.pbtxt path of the engine: any bytes as
// config text through engine/model_config.h ParseModelConfig and
// engine/repository.h ParseValidatedModelConfig (the checks ReadModelConfig
// runs after reading the file: name, ValidateModelConfig and the version
// policy), without the filesystem. Checks that errors are InvalidArgument
// naming the source, and that a config that passes validation has a valid
// name, at least one layer and positive sizes.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "common/str_util.h"
#include "engine/model_config.h"
#include "engine/model_spec.h"
#include "engine/repository.h"
#include "tests/fuzz/fuzz_check.h"

namespace {
constexpr std::string_view kSource = "fuzz/config.pbtxt";
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<nnserve::v1::ModelConfig> parsed =
      nnserve::engine::ParseModelConfig(text, kSource);
  if (!parsed.ok()) {
    FUZZ_CHECK(parsed.status().code() == absl::StatusCode::kInvalidArgument,
               "errors are InvalidArgument");
    FUZZ_CHECK(
        absl::StartsWith(parsed.status().message(), nnserve::Sv(kSource)),
        "errors name the source");
    return 0;
  }
  // Validate as if the directory had the config's own name, so the
  // semantic checks run whatever the name is.
  absl::StatusOr<nnserve::v1::ModelConfig> config =
      nnserve::engine::ParseValidatedModelConfig(text, kSource, parsed->name());
  if (!config.ok()) {
    FUZZ_CHECK(config.status().code() == absl::StatusCode::kInvalidArgument,
               "errors are InvalidArgument");
    FUZZ_CHECK(
        absl::StartsWith(config.status().message(), nnserve::Sv(kSource)),
        "errors name the source");
    return 0;
  }
  FUZZ_CHECK(nnserve::engine::IsValidModelName(config->name()),
             "a valid config has a valid model name");
  FUZZ_CHECK(config->layers_size() > 0, "a valid config has layers");
  FUZZ_CHECK(config->input().size() > 0, "a valid config has an input size");
  for (const auto& layer : config->layers()) {
    FUZZ_CHECK(layer.units() > 0, "a valid layer has units");
    FUZZ_CHECK(nnserve::engine::IsValidTensorName(layer.weight()),
               "a valid layer names a safe weight tensor");
  }
  return 0;
}
