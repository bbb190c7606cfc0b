// The test oracle: a plain-loop forward pass of a dense model straight from
// its config and tensors (either weight layout), accumulating in double,
// with every activation (GELU in the exact erf form) and a max-subtracted
// softmax. Deliberately independent of engine/ code other than the data
// types. Stateless functions; thread-safe.
#ifndef NNSERVE_TESTS_UTIL_REFERENCE_H_
#define NNSERVE_TESTS_UTIL_REFERENCE_H_

#include <cstdint>
#include <span>
#include <vector>

#include "formats/tensor.h"
#include "nnserve/v1/model_config.pb.h"

namespace nnserve::testing {

// Runs `rows` rows of `input` ([rows, input.size] row-major) through the
// model; returns [rows, last units] row-major. The config must be valid and
// the tensors present with the right shapes (the oracle does not check).
std::vector<double> ReferenceForward(const v1::ModelConfig& config,
                                     const formats::TensorMap& tensors,
                                     std::span<const float> input,
                                     int64_t rows);

// Applies one activation to a row in place (alpha as the engine applies it:
// the config value or the default 0.01 / 1.0).
void ReferenceActivation(v1::Activation activation, double alpha,
                         std::span<double> row);

// The error measure used by the engine tests: the largest
// |actual - expected| in a row divided by the row's largest |expected|
// (floored at 1e-6), maximised over rows. A row-normalised relative error:
// it does not blow up on outputs that are near zero by cancellation.
double MaxRowRelativeError(std::span<const float> actual,
                           std::span<const double> expected, int64_t rows);

}  // namespace nnserve::testing

#endif  // NNSERVE_TESTS_UTIL_REFERENCE_H_
