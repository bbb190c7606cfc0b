// Tests of the derived gRPC message limit (server/lifecycle/message_limit.h):
// the largest request, response or ModelInfo of any model with
// --max-batch-rows rows, never below gRPC's 4 MiB default, never above
// INT_MAX, and which model decided it.
#include "server/lifecycle/message_limit.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace nnserve::server {
namespace {

v1::ModelConfig Config(const std::string& name, int64_t inputs, int64_t outputs,
                       const std::vector<std::string>& labels = {}) {
  v1::ModelConfig config;
  config.set_name(name);
  config.mutable_input()->set_size(inputs);
  v1::LayerConfig* hidden = config.add_layers();
  hidden->set_units(32);
  config.add_layers()->set_units(outputs);
  for (const std::string& label : labels) {
    config.mutable_output()->add_labels(label);
  }
  return config;
}

TEST(MessageLimitTest, RequestIsRowsTimesInputsTimesFourPlusMargin) {
  const ModelMessageBytes sizes =
      MessageBytesFor(Config("wide", 4096, 10), 1024);
  EXPECT_EQ(sizes.request, 1024 * 4096 * 4 + kMessageMargin);
  EXPECT_EQ(sizes.response, 1024 * 10 * 4 + kMessageMargin);
  EXPECT_EQ(sizes.largest(), sizes.request);
}

TEST(MessageLimitTest, ResponseCountsTheOutputsAndTheLongestLabelPerRow) {
  const ModelMessageBytes sizes = MessageBytesFor(
      Config("expand", 8, 100000, {"a", "a much longer label"}), 64);
  // 19 bytes of the longest label + 16 for its tags and the class.
  EXPECT_EQ(sizes.response, 64 * (100000 * 4 + 19 + 16) + kMessageMargin);
  EXPECT_GT(sizes.response, sizes.request);
}

TEST(MessageLimitTest, SmallModelsGetGrpcsDefaultMinimum) {
  const std::vector<v1::ModelConfig> configs = {Config("digits", 64, 10)};
  const DerivedMessageLimit limit = DeriveMessageLimit(configs, 1024);
  EXPECT_EQ(limit.bytes, kMinMessageLimit);
  EXPECT_EQ(limit.model, "digits");
  EXPECT_EQ(limit.sizes.request, 1024 * 64 * 4 + kMessageMargin);
  EXPECT_EQ(DeriveMessageLimit({}, 1024).bytes, kMinMessageLimit);
}

TEST(MessageLimitTest, TheLargestModelDecidesAndMoreRowsRaiseIt) {
  const std::vector<v1::ModelConfig> configs = {Config("digits", 64, 10),
                                                Config("wide", 4096, 10),
                                                Config("mlp-784", 784, 10)};
  const DerivedMessageLimit limit = DeriveMessageLimit(configs, 1024);
  EXPECT_EQ(limit.model, "wide");
  EXPECT_EQ(limit.bytes, 1024 * 4096 * 4 + kMessageMargin);
  EXPECT_EQ(limit.sizes.request, limit.bytes);
  EXPECT_EQ(DeriveMessageLimit(configs, 2048).bytes,
            2048 * 4096 * 4 + kMessageMargin);
}

TEST(MessageLimitTest, HugeSizesSaturateAtIntMax) {
  const std::vector<v1::ModelConfig> configs = {
      Config("huge", int64_t{1} << 40, 10)};
  EXPECT_EQ(DeriveMessageLimit(configs, 1 << 30).bytes, kMaxMessageLimit);
  EXPECT_EQ(MessageBytesFor(Config("neg", -5, -7), 16).request, kMessageMargin);
}

}  // namespace
}  // namespace nnserve::server
