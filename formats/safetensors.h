// Parser for the safetensors format: an 8-byte little-endian header length,
// a JSON header {name: {dtype, shape, data_offsets}, "__metadata__": {...}},
// then the raw little-endian tensor bytes. Stateless; thread-safe.
//
// The parser works on an in-memory buffer (so fuzzers can drive it) and
// never trusts the header: lengths, offsets, shapes and element counts are
// checked against the buffer before anything is read or allocated.
#ifndef NNSERVE_FORMATS_SAFETENSORS_H_
#define NNSERVE_FORMATS_SAFETENSORS_H_

#include <string_view>

#include "absl/status/statusor.h"
#include "formats/tensor.h"

namespace nnserve::formats {

// Parses every tensor in `bytes`. Accepts dtypes F32, F64, F16 and BF16.
// `source` names the file in error messages, e.g. "digits/1/model.safetensors".
// Errors are InvalidArgument and name the source, the tensor, what was found
// and what was expected.
absl::StatusOr<TensorMap> ParseSafetensors(std::string_view bytes,
                                           std::string_view source);

}  // namespace nnserve::formats

#endif  // NNSERVE_FORMATS_SAFETENSORS_H_
