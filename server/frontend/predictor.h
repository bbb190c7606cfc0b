// The work of one Predict call once the request is decoded: run the forward
// pass of a served model version, fill the response (output tensor in the
// request's encoding, argmax labels and classes for models with labels) and
// record the inference metrics (latency, per-layer latency, rows).
//
// Stateless functions; thread-safe (a per-thread scratch buffer is reused
// across calls, so steady-state calls do not allocate beyond the response).
#ifndef NNSERVE_SERVER_FRONTEND_PREDICTOR_H_
#define NNSERVE_SERVER_FRONTEND_PREDICTOR_H_

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "engine/model.h"
#include "nnserve/v1/inference.pb.h"
#include "server/lifecycle/model_manager.h"
#include "server/frontend/tensor_codec.h"

namespace nnserve::server {

// Runs `input` through `served` and fills `response` (model, version,
// output, labels/classes). When `time_layers` is set, per-layer wall times
// are measured and recorded in nnserve_layer_duration_seconds.
absl::Status RunPredict(const ServedVersion& served, const DecodedInput& input,
                        bool time_layers, v1::PredictResponse* response);

// Fills `response` for a call whose `rows` output rows are `output`
// ([rows, outputs], row-major): the output tensor in `encoding`, model,
// version, and labels/classes for models with labels. Used by the dynamic
// batcher to hand each caller its slice of a merged forward pass.
void FillPredictResponse(const ServedVersion& served,
                         std::span<const float> output, int64_t rows,
                         TensorEncoding encoding,
                         v1::PredictResponse* response);

}  // namespace nnserve::server

#endif  // NNSERVE_SERVER_FRONTEND_PREDICTOR_H_
