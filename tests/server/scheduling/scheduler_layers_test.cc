// Scheduler calls that ask for layer outputs (InferenceCall::layers): such a
// call runs as a batch of its own — the calls queued around it still merge
// with each other — its layer outputs equal the reference cut after that
// layer, every call still gets exactly its own rows, and the layer buffers
// count toward the queued bytes.
#include <memory>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/scheduling/scheduler.h"
#include "tests/server/scheduling/scheduler_test_util.h"

namespace nnserve::server {
namespace {

using ::nnserve::testing::AnswerLog;
using ::nnserve::testing::BatchRows;
using ::nnserve::testing::Call;
using ::nnserve::testing::Gate;
using ::nnserve::testing::HasOwnRows;
using ::nnserve::testing::MediumModel;
using ::nnserve::testing::NewCall;
using ::nnserve::testing::ReadBatchRows;
using ::nnserve::testing::TestModel;
using ::nnserve::testing::ToInferenceCall;
using ::nnserve::testing::VersionMetrics;

TEST(SchedulerLayersTest, ACallWithLayersRunsAloneAndGetsThem) {
  const TestModel m = MediumModel("m", 21);
  ServerMetrics metrics{"test"};
  AnswerLog log;
  std::vector<std::unique_ptr<Call>> calls;
  Scheduler scheduler{{.threads = 1, .inline_work_limit = 0}};
  Gate gate{scheduler, 0};
  auto queue = scheduler.CreateQueue(
      m.model, {.merge = true, .max_batch_rows = 8}, VersionMetrics(metrics, m),
      metrics.ForBatcher("m"), m.description());

  ASSERT_NO_FATAL_FAILURE(gate.Close());
  const int64_t rows[] = {2, 3, 1, 2};
  std::vector<float> hidden(3 * 64, std::nanf(""));
  int64_t bytes = 0;
  for (int i = 0; i < 4; ++i) {
    calls.push_back(NewCall(m, rows[i], 700 + i, "m#" + std::to_string(i)));
    InferenceCall call = ToInferenceCall(calls.back().get(), &log);
    bytes += static_cast<int64_t>((call.input.size() + call.output.size()) *
                                  sizeof(float));
    if (i == 1) {
      call.layers.push_back({.layer = 0, .values = hidden});
      bytes += static_cast<int64_t>(hidden.size() * sizeof(float));
    }
    ASSERT_TRUE(scheduler.Submit(queue, std::move(call)).ok());
  }
  EXPECT_EQ(scheduler.queued_bytes(), bytes);
  gate.Open();
  ASSERT_TRUE(log.WaitForAnswers(calls.size()));
  for (const auto& call : calls) EXPECT_TRUE(HasOwnRows(*call));
  // [2] [3 with layers, alone] [1 2]: without the layers, [2 3 1 2] would
  // have been one batch of 8.
  const BatchRows batches = ReadBatchRows(metrics, "m");
  EXPECT_EQ(batches.batches, 3u);
  EXPECT_EQ(batches.rows, 8);

  v1::ModelConfig cut = m.random.config;
  cut.mutable_layers()->DeleteSubrange(1, cut.layers_size() - 1);
  const std::vector<double> expected = ::nnserve::testing::ReferenceForward(
      cut, m.random.tensors, calls[1]->input, 3);
  EXPECT_LE(::nnserve::testing::MaxRowRelativeError(hidden, expected, 3), 1e-5);
  EXPECT_EQ(scheduler.queued_bytes(), 0);
}

}  // namespace
}  // namespace nnserve::server
