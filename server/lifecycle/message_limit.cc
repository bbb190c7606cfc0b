#include "server/lifecycle/message_limit.h"

#include <algorithm>

namespace nnserve::server {
namespace {

constexpr int64_t kFloatBytes = 4;
// A class index (varint) and the field tags around one label.
constexpr int64_t kPerLabelRow = 16;
// A LayerInfo: name, sizes, activation and six statistics.
constexpr int64_t kPerLayerInfo = 512;

// a * b + c without overflowing: saturates at kMaxMessageLimit.
int64_t Bytes(int64_t a, int64_t b, int64_t c) {
  a = std::max<int64_t>(a, 0);
  b = std::max<int64_t>(b, 0);
  if (b != 0 && a > (kMaxMessageLimit - c) / b) return kMaxMessageLimit;
  return std::min(a * b + c, kMaxMessageLimit);
}

}  // namespace

int64_t ModelMessageBytes::largest() const {
  return std::max({request, response, model_info});
}

ModelMessageBytes MessageBytesFor(const v1::ModelConfig& config,
                                  int64_t max_batch_rows) {
  const int64_t rows = std::max<int64_t>(max_batch_rows, 1);
  const int64_t outputs =
      config.layers().empty() ? 0 : config.layers().rbegin()->units();
  int64_t longest_label = 0;
  int64_t all_labels = 0;
  for (const std::string& label : config.output().labels()) {
    longest_label = std::max<int64_t>(longest_label, label.size());
    all_labels += static_cast<int64_t>(label.size()) + kPerLabelRow;
  }
  const int64_t per_label_row =
      config.output().labels().empty() ? 0 : longest_label + kPerLabelRow;
  const int64_t output_row =
      Bytes(std::max<int64_t>(outputs, 0), kFloatBytes, per_label_row);
  ModelMessageBytes sizes;
  sizes.request =
      Bytes(rows, Bytes(config.input().size(), kFloatBytes, 0), kMessageMargin);
  sizes.response = Bytes(rows, output_row, kMessageMargin);
  sizes.model_info =
      Bytes(config.layers_size(), kPerLayerInfo, kMessageMargin + all_labels);
  return sizes;
}

DerivedMessageLimit DeriveMessageLimit(std::span<const v1::ModelConfig> configs,
                                       int64_t max_batch_rows) {
  DerivedMessageLimit limit;
  int64_t largest = -1;
  for (const v1::ModelConfig& config : configs) {
    const ModelMessageBytes sizes = MessageBytesFor(config, max_batch_rows);
    if (sizes.largest() > largest) {
      largest = sizes.largest();
      limit.model = config.name();
      limit.sizes = sizes;
    }
  }
  limit.bytes = std::max(largest, kMinMessageLimit);
  return limit;
}

}  // namespace nnserve::server
