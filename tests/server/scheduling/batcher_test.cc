// In-process tests of ModelBatcher: a real model (ModelManager over a
// temporary repository), a real InferencePool, and calls submitted from many
// threads. Merging is made deterministic where a test depends on it by
// occupying the pool's only worker while calls are queued.
#include "server/scheduling/batcher.h"

#include <atomic>
#include <latch>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/server/frontend/service_test_util.h"
#include "tests/util/model_builder.h"
#include "tests/util/reference.h"

namespace nnserve::server {
namespace {

using nnserve::testing::BuildRandomModel;
using nnserve::testing::FillRandomInput;
using nnserve::testing::RandomModel;
using nnserve::testing::ScopedTempDir;
using nnserve::testing::TensorFloats;
using nnserve::testing::WriteAndLoadModel;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr int64_t kInputs = 12;
constexpr int64_t kOutputs = 4;

// One call: its request (owning the input), response and outcome.
struct Caller {
  v1::PredictRequest request;
  v1::PredictResponse response;
  absl::Status status = absl::UnknownError("not answered");
  int answers = 0;
  std::atomic<bool> cancelled{false};
};

class BatcherTest : public ::testing::Test {
 protected:
  void SetUp() override {
    model_ = BuildRandomModel("m", kInputs,
                              {{16, engine::Activation::kRelu},
                               {kOutputs, engine::Activation::kSoftmax}},
                              engine::WeightLayout::kOutIn, 3);
    for (const char* label : {"a", "b", "c", "d"}) {
      model_.config.mutable_output()->add_labels(label);
    }
    ASSERT_NO_FATAL_FAILURE(
        WriteAndLoadModel(repo_.path(), model_, &metrics_, &manager_));
    auto served = manager_->Find("m", 1);
    ASSERT_TRUE(served.ok()) << served.status();
    served_ = *served;
  }

  std::unique_ptr<Caller> MakeCaller(int64_t rows, bool raw, uint32_t seed) {
    auto caller = std::make_unique<Caller>();
    FillRandomInput(caller->request.mutable_input(), rows, kInputs, raw, seed);
    return caller;
  }

  // Submits `caller` to `batcher`; `done` counts answers under mu_.
  absl::Status Submit(ModelBatcher& batcher, Caller* caller,
                      std::chrono::system_clock::time_point deadline =
                          std::chrono::system_clock::time_point::max()) {
    auto input =
        DecodeInput(caller->request.input(), {.features = kInputs,
                                              .max_batch_rows = 1 << 20,
                                              .description = "model 'm'"});
    EXPECT_TRUE(input.ok()) << input.status();
    return batcher.Submit(ModelBatcher::Call{
        .input = *std::move(input),
        .response = &caller->response,
        .deadline = deadline,
        .is_cancelled = [caller] { return caller->cancelled.load(); },
        .done =
            [this, caller](absl::Status status) {
              std::lock_guard<std::mutex> lock(mu_);
              caller->status = std::move(status);
              ++caller->answers;
            },
    });
  }

  // The caller's rows run alone through the engine (no batching).
  std::vector<double> Unbatched(const Caller& caller) {
    const int64_t rows = caller.request.input().shape(0);
    const std::vector<float> x = TensorFloats(caller.request.input());
    std::vector<float> y(static_cast<size_t>(rows * kOutputs));
    EXPECT_TRUE(served_->model->Forward(x, rows, y).ok());
    return {y.begin(), y.end()};
  }

  // Checks that `caller` got exactly its own rows, as the unbatched result.
  void ExpectOwnRows(const Caller& caller) {
    std::lock_guard<std::mutex> lock(mu_);
    ASSERT_EQ(caller.answers, 1);
    ASSERT_TRUE(caller.status.ok()) << caller.status;
    const int64_t rows = caller.request.input().shape(0);
    const bool raw = !caller.request.input().raw().empty();
    EXPECT_THAT(caller.response.output().shape(), ElementsAre(rows, kOutputs));
    EXPECT_EQ(caller.response.output().raw().empty(), !raw);
    const std::vector<double> expected = Unbatched(caller);
    const std::vector<float> actual = TensorFloats(caller.response.output());
    ASSERT_EQ(actual.size(), expected.size());
    EXPECT_LE(nnserve::testing::MaxRowRelativeError(actual, expected, rows),
              1e-5);
    ASSERT_EQ(caller.response.classes_size(), rows);
    EXPECT_EQ(caller.response.model(), "m");
    EXPECT_EQ(caller.response.version(), 1);
  }

  // A histogram's (sample count, sum) for model "m".
  std::pair<double, double> Histogram(const std::string& name) {
    for (const auto& family : metrics_.registry()->Collect()) {
      if (family.name != name) continue;
      for (const auto& metric : family.metric) {
        for (const auto& l : metric.label) {
          if (l.name == "model" && l.value == "m") {
            return {static_cast<double>(metric.histogram.sample_count),
                    metric.histogram.sample_sum};
          }
        }
      }
    }
    return {-1, -1};
  }

  double QueueSizeGauge() {
    for (const auto& family : metrics_.registry()->Collect()) {
      if (family.name != "nnserve_queue_size") continue;
      for (const auto& metric : family.metric) {
        for (const auto& l : metric.label) {
          if (l.name == "model" && l.value == "m") return metric.gauge.value;
        }
      }
    }
    return -1;
  }

  // Occupies the pool's only worker until Release().
  void Block(InferencePool& pool) {
    ASSERT_TRUE(pool.TrySubmit([this] {
      started_.count_down();
      release_.wait();
    }));
    started_.wait();
  }
  void Release() { release_.count_down(); }

  ScopedTempDir repo_{"nnserve_batcher_test"};
  RandomModel model_;
  ServerMetrics metrics_{"test"};
  std::unique_ptr<ModelManager> manager_;
  std::shared_ptr<const ServedVersion> served_;
  std::mutex mu_;
  std::latch started_{1};
  std::latch release_{1};
};

TEST_F(BatcherTest, RandomizedConcurrentCallersGetExactlyTheirOwnRows) {
  InferencePool pool({.threads = 2, .intra_op_threads = 1, .max_queue = 64});
  int64_t total_rows = 0;
  constexpr int kThreads = 12;
  constexpr int kCallsPerThread = 40;
  std::vector<std::unique_ptr<Caller>> callers;
  std::mt19937 rng(42);
  std::uniform_int_distribution<int64_t> rows_dist(1, 9);
  for (int i = 0; i < kThreads * kCallsPerThread; ++i) {
    const int64_t rows = rows_dist(rng);
    total_rows += rows;
    callers.push_back(MakeCaller(rows, i % 3 == 0, 1000 + i));
  }
  {
    ModelBatcher batcher(served_, &pool,
                         {.max_batch_rows = 16,
                          .max_queue_delay_us = 0,
                          .max_queue_size = 10000,
                          .max_concurrent_batches = 2});
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        for (int i = 0; i < kCallsPerThread; ++i) {
          EXPECT_TRUE(
              Submit(batcher, callers[t * kCallsPerThread + i].get()).ok());
        }
      });
    }
    for (std::thread& thread : threads) thread.join();
    pool.Shutdown();  // Runs every queued batch.
  }                   // ~ModelBatcher waits for its runners.
  for (const auto& caller : callers) ExpectOwnRows(*caller);
  const auto [forwards, rows] = Histogram("nnserve_batch_rows");
  EXPECT_EQ(rows, static_cast<double>(total_rows));
  EXPECT_GE(forwards, 1);
  EXPECT_LE(forwards, static_cast<double>(callers.size()));
  EXPECT_EQ(Histogram("nnserve_queue_duration_seconds").first,
            static_cast<double>(callers.size()));
  EXPECT_EQ(QueueSizeGauge(), 0);
}

TEST_F(BatcherTest, MergesQueuedCallsUpToMaxBatchRowsInArrivalOrder) {
  InferencePool pool({.threads = 1, .intra_op_threads = 1, .max_queue = 8});
  ModelBatcher batcher(served_, &pool,
                       {.max_batch_rows = 16, .max_concurrent_batches = 1});
  Block(pool);
  std::vector<std::unique_ptr<Caller>> callers;
  for (int i = 0; i < 10; ++i) {
    callers.push_back(MakeCaller(3, i % 2 == 0, 50 + i));
    ASSERT_TRUE(Submit(batcher, callers.back().get()).ok());
  }
  EXPECT_EQ(batcher.queued(), 10u);
  EXPECT_EQ(QueueSizeGauge(), 10);
  Release();
  pool.Shutdown();
  for (const auto& caller : callers) ExpectOwnRows(*caller);
  // 5 calls of 3 rows fit in 16; the next would make 18: two forwards.
  EXPECT_EQ(Histogram("nnserve_batch_rows"), std::make_pair(2.0, 30.0));
  EXPECT_EQ(QueueSizeGauge(), 0);
}

TEST_F(BatcherTest, CallLargerThanMaxBatchRowsRunsAloneAsItsOwnForward) {
  InferencePool pool({.threads = 1, .intra_op_threads = 1, .max_queue = 8});
  ModelBatcher batcher(served_, &pool,
                       {.max_batch_rows = 8, .max_concurrent_batches = 1});
  Block(pool);
  std::vector<std::unique_ptr<Caller>> callers;
  for (int64_t rows : {2, 20, 3}) {
    callers.push_back(MakeCaller(rows, false, 7 + rows));
    ASSERT_TRUE(Submit(batcher, callers.back().get()).ok());
  }
  Release();
  pool.Shutdown();
  for (const auto& caller : callers) ExpectOwnRows(*caller);
  // [2], [20] alone (never split), [3]: three forwards, 25 rows.
  EXPECT_EQ(Histogram("nnserve_batch_rows"), std::make_pair(3.0, 25.0));
}

TEST_F(BatcherTest, FullQueueIsRejectedAtOnceAndAcceptedCallsComplete) {
  InferencePool pool({.threads = 1, .intra_op_threads = 1, .max_queue = 8});
  ModelBatcher batcher(served_, &pool,
                       {.max_batch_rows = 64, .max_queue_size = 3});
  Block(pool);
  std::vector<std::unique_ptr<Caller>> callers;
  for (int i = 0; i < 3; ++i) {
    callers.push_back(MakeCaller(1, false, 90 + i));
    ASSERT_TRUE(Submit(batcher, callers.back().get()).ok());
  }
  auto rejected = MakeCaller(1, false, 99);
  absl::Status status = Submit(batcher, rejected.get());
  EXPECT_EQ(status.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(status.message(), HasSubstr("max_queue_size"));
  Release();
  pool.Shutdown();
  for (const auto& caller : callers) ExpectOwnRows(*caller);
  EXPECT_EQ(rejected->answers, 0);  // The caller answers a rejection itself.
  EXPECT_EQ(Histogram("nnserve_batch_rows"), std::make_pair(1.0, 3.0));
}

TEST_F(BatcherTest, ExpiredAndCancelledQueuedCallsAreAnsweredNotComputed) {
  InferencePool pool({.threads = 1, .intra_op_threads = 1, .max_queue = 8});
  ModelBatcher batcher(served_, &pool, {.max_batch_rows = 64});
  Block(pool);
  auto live = MakeCaller(2, false, 1);
  auto expiring = MakeCaller(3, false, 2);
  auto cancelled = MakeCaller(4, true, 3);
  const auto deadline =
      std::chrono::system_clock::now() + std::chrono::milliseconds(20);
  ASSERT_TRUE(Submit(batcher, live.get()).ok());
  ASSERT_TRUE(Submit(batcher, expiring.get(), deadline).ok());
  ASSERT_TRUE(Submit(batcher, cancelled.get()).ok());
  cancelled->cancelled = true;
  // Let the deadline pass while the call is queued (ordering, not timing:
  // the check below holds however long this takes).
  while (std::chrono::system_clock::now() <= deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  Release();
  pool.Shutdown();
  ExpectOwnRows(*live);
  EXPECT_EQ(expiring->answers, 1);
  EXPECT_EQ(expiring->status.code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_EQ(cancelled->answers, 1);
  EXPECT_EQ(cancelled->status.code(), absl::StatusCode::kCancelled);
  EXPECT_FALSE(expiring->response.has_output());
  EXPECT_FALSE(cancelled->response.has_output());
  // Only the live call's 2 rows were computed.
  EXPECT_EQ(Histogram("nnserve_batch_rows"), std::make_pair(1.0, 2.0));
  EXPECT_EQ(Histogram("nnserve_inference_duration_seconds").first, 1.0);
}

TEST_F(BatcherTest, ShutdownWhileCallsAreQueuedAnswersEveryOne) {
  InferencePool pool({.threads = 1, .intra_op_threads = 1, .max_queue = 8});
  std::vector<std::unique_ptr<Caller>> callers;
  {
    ModelBatcher batcher(served_, &pool, {.max_batch_rows = 4});
    Block(pool);
    for (int i = 0; i < 25; ++i) {
      callers.push_back(MakeCaller(1 + i % 3, i % 2 == 1, 300 + i));
      ASSERT_TRUE(Submit(batcher, callers.back().get()).ok());
    }
    // Shut the pool down while everything is still queued behind the
    // blocked worker; Shutdown runs queued tasks before joining.
    std::thread shutdown([&pool] { pool.Shutdown(); });
    Release();
    shutdown.join();
    // After shutdown no runner can start: a new call is answered
    // UNAVAILABLE rather than left in the queue.
    auto late = MakeCaller(1, false, 999);
    ASSERT_TRUE(Submit(batcher, late.get()).ok());
    EXPECT_EQ(late->answers, 1);
    EXPECT_EQ(late->status.code(), absl::StatusCode::kUnavailable);
  }
  for (const auto& caller : callers) ExpectOwnRows(*caller);
  EXPECT_EQ(QueueSizeGauge(), 0);
}

TEST(ResolveBatchingOptionsTest, ConfigFieldsAboveZeroOverrideDefaults) {
  const BatchingOptions defaults{.max_batch_rows = 64,
                                 .max_queue_delay_us = 0,
                                 .max_queue_size = 256,
                                 .max_concurrent_batches = 2};
  v1::DynamicBatching config;
  BatchingOptions o = ResolveBatchingOptions(config, defaults);
  EXPECT_EQ(o.max_batch_rows, 64);
  EXPECT_EQ(o.max_queue_delay_us, 0);
  EXPECT_EQ(o.max_queue_size, 256);
  config.set_max_batch_rows(8);
  config.set_max_queue_delay_us(500);
  config.set_max_queue_size(5);
  o = ResolveBatchingOptions(config, defaults);
  EXPECT_EQ(o.max_batch_rows, 8);
  EXPECT_EQ(o.max_queue_delay_us, 500);
  EXPECT_EQ(o.max_queue_size, 5);
  EXPECT_EQ(o.max_concurrent_batches, 2);
}

}  // namespace
}  // namespace nnserve::server
