// Formatting for nnserve-cli: human-readable tables (the default) and JSON
// documents (--json) for each command's result. Pure functions; thread-safe.
#ifndef NNSERVE_CLIENT_CLI_OUTPUT_H_
#define NNSERVE_CLIENT_CLI_OUTPUT_H_

#include <string>
#include <string_view>

#include <google/protobuf/message.h>
#include <nlohmann/json.hpp>

#include "client/health_codec.h"
#include "client/load_generator.h"
#include "client/rows.h"
#include "nnserve/v1/inference.pb.h"
#include "nnserve/v1/model_repository.pb.h"

namespace nnserve::cli {

// Per row: the label and class (models with labels) and the `top_k` largest
// outputs as "class:value", or the whole output vector otherwise.
std::string PredictText(const v1::PredictResponse& response,
                        const RowBatch& output, int top_k);

// {"model", "version", "encoding", "rows": [{"output": [...], "class",
// "label"}]} ("class"/"label" only when the response carries them).
nlohmann::json PredictJson(const v1::PredictResponse& response,
                           const RowBatch& output);

// Model metadata followed by a table of layers.
std::string ModelInfoText(const v1::ModelInfoResponse& info);

// One line per model version: name, version, state, error.
std::string ModelListText(const v1::ListModelsResponse& list);

// One line: "loaded model 'M'" / "unloaded model 'M'".
std::string LoadModelText(const v1::LoadModelResponse& response);
std::string UnloadModelText(const v1::UnloadModelResponse& response);

// The proto3 JSON mapping of `message` (field names as in the .proto, all
// fields printed; 64-bit integers are strings as that mapping specifies).
nlohmann::json ProtoJson(const google::protobuf::Message& message);

// {"service": ..., "status": "SERVING"}.
nlohmann::json HealthJson(std::string_view service, ServingStatus status);

// Throughput, latency percentiles and errors of a load run.
std::string LoadReportText(const LoadReport& report, std::string_view model,
                           std::string_view encoding, double warmup_seconds);
nlohmann::json LoadReportJson(const LoadReport& report, std::string_view model,
                              std::string_view encoding, double warmup_seconds);

}  // namespace nnserve::cli

#endif  // NNSERVE_CLIENT_CLI_OUTPUT_H_
