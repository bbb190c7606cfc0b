// The gRPC message size limit derived from a repository's models, for when
// --max-message-bytes is not given: large enough for the largest request
// and response any model present can take (--max-batch-rows rows), and not
// the 64 MiB nobody needs. The gRPC server's limit is fixed when it is
// built, before models load, so the server derives it from the configs a
// repository scan reads at start-up (cheap: no weights are read). Models
// that appear later (modes poll and explicit) do not raise it: their
// requests over the limit are refused by gRPC with RESOURCE_EXHAUSTED
// ("received message larger than max"), their responses over it by the
// inference service with RESOURCE_EXHAUSTED naming --max-message-bytes;
// set --max-message-bytes for such repositories.
//
// Pure functions; thread-safe.
#ifndef NNSERVE_SERVER_LIFECYCLE_MESSAGE_LIMIT_H_
#define NNSERVE_SERVER_LIFECYCLE_MESSAGE_LIMIT_H_

#include <cstdint>
#include <span>
#include <string>

#include "nnserve/v1/model_config.pb.h"

namespace nnserve::server {

// Framing, field tags, the model name and the shape of one message.
inline constexpr int64_t kMessageMargin = int64_t{64} << 10;
// Never below gRPC's own default (4 MiB): ModelInfo and ListModels answers
// and small models stay clear of it.
inline constexpr int64_t kMinMessageLimit = int64_t{4} << 20;
// gRPC takes the limit as an int.
inline constexpr int64_t kMaxMessageLimit = 2147483647;

// The sizes one model's messages can reach with `max_batch_rows` rows.
struct ModelMessageBytes {
  // [rows, input size] float32 + margin.
  int64_t request = 0;
  // [rows, output size] float32, a label and a class per row (models with
  // labels) + margin.
  int64_t response = 0;
  // ModelInfo: every label, a few hundred bytes per layer + margin.
  int64_t model_info = 0;
  int64_t largest() const;
};

// Sizes from `config` (need not be valid: negative sizes count as 0).
ModelMessageBytes MessageBytesFor(const v1::ModelConfig& config,
                                  int64_t max_batch_rows);

struct DerivedMessageLimit {
  int64_t bytes = kMinMessageLimit;
  // The model with the largest messages (empty: no models), which decided
  // the limit unless the minimum did.
  std::string model;
  ModelMessageBytes sizes;  // That model's.
};

// The largest message of any of `configs`, at least kMinMessageLimit and
// at most kMaxMessageLimit.
DerivedMessageLimit DeriveMessageLimit(std::span<const v1::ModelConfig> configs,
                                       int64_t max_batch_rows);

}  // namespace nnserve::server

#endif  // NNSERVE_SERVER_LIFECYCLE_MESSAGE_LIMIT_H_
