// Internal to engine/: builds the ModelInfo description (shapes, parameter
// counts, weight/bias statistics) of a ModelSpec. Stateless; thread-safe.
#ifndef NNSERVE_ENGINE_MODEL_STATS_H_
#define NNSERVE_ENGINE_MODEL_STATS_H_

#include <cstdint>
#include <span>

#include "engine/model.h"
#include "engine/model_spec.h"

namespace nnserve::engine {

// Mean, population std, min and max of `values`, accumulated in double.
// All zeros for an empty span.
TensorStats ComputeTensorStats(std::span<const float> values);

// Everything in ModelInfo except load_seconds (left 0).
ModelInfo DescribeModel(const ModelSpec& spec, int64_t version);

}  // namespace nnserve::engine

#endif  // NNSERVE_ENGINE_MODEL_STATS_H_
