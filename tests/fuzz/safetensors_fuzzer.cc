// libFuzzer harness for formats/safetensors.h ParseSafetensors: any bytes
// as a safetensors file. Checks that errors are InvalidArgument naming the
// source, and that every parsed tensor holds exactly product(shape) values
// whose encoded size fits in the input (no allocation beyond the buffer).
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "common/str_util.h"
#include "formats/half.h"
#include "formats/safetensors.h"
#include "tests/fuzz/fuzz_check.h"

namespace {
constexpr std::string_view kSource = "fuzz/model.safetensors";
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<nnserve::formats::TensorMap> tensors =
      nnserve::formats::ParseSafetensors(bytes, kSource);
  if (!tensors.ok()) {
    FUZZ_CHECK(tensors.status().code() == absl::StatusCode::kInvalidArgument,
               "errors are InvalidArgument");
    FUZZ_CHECK(
        absl::StartsWith(tensors.status().message(), nnserve::Sv(kSource)),
        "errors name the source");
    return 0;
  }
  size_t encoded = 0;
  for (const auto& [name, tensor] : *tensors) {
    uint64_t elements = 1;
    for (int64_t dim : tensor.shape) {
      FUZZ_CHECK(dim >= 0, "dimensions are non-negative");
      elements *= static_cast<uint64_t>(dim);  // Cannot wrap: checked.
    }
    FUZZ_CHECK(elements == tensor.values.size(),
               "a tensor holds product(shape) values");
    encoded +=
        tensor.values.size() * nnserve::formats::DTypeSize(tensor.file_dtype);
  }
  FUZZ_CHECK(encoded <= size, "tensor data fits in the file");
  return 0;
}
