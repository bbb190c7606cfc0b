#include "server/scheduling/inference_pool.h"

#include <omp.h>

#include <atomic>
#include <latch>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace nnserve::server {
namespace {

TEST(InferencePoolTest, RunsEverySubmittedTask) {
  std::atomic<int> sum{0};
  {
    InferencePool pool(
        {.threads = 2, .intra_op_threads = 1, .max_queue = 1000});
    for (int i = 1; i <= 100; ++i) {
      ASSERT_TRUE(pool.TrySubmit([&sum, i] { sum += i; }));
    }
    pool.Shutdown();  // Runs what is queued, then joins.
  }
  EXPECT_EQ(sum.load(), 5050);
}

TEST(InferencePoolTest, FullQueueRefusesInsteadOfBlocking) {
  InferencePool pool({.threads = 1, .intra_op_threads = 1, .max_queue = 2});
  std::latch started(1);
  std::latch release(1);
  // Occupy the only worker.
  ASSERT_TRUE(pool.TrySubmit([&] {
    started.count_down();
    release.wait();
  }));
  started.wait();
  std::atomic<int> ran{0};
  EXPECT_TRUE(pool.TrySubmit([&] { ++ran; }));
  EXPECT_TRUE(pool.TrySubmit([&] { ++ran; }));
  EXPECT_EQ(pool.queued(), 2u);
  EXPECT_FALSE(pool.TrySubmit([&] { ran += 100; }));  // Queue is full.
  release.count_down();
  pool.Shutdown();
  EXPECT_EQ(ran.load(), 2);
}

TEST(InferencePoolTest, RefusesAfterShutdown) {
  InferencePool pool({.threads = 1, .intra_op_threads = 1, .max_queue = 4});
  pool.Shutdown();
  bool ran = false;
  EXPECT_FALSE(pool.TrySubmit([&] { ran = true; }));
  EXPECT_FALSE(ran);
  pool.Shutdown();  // Idempotent.
}

TEST(InferencePoolTest, WorkersUseTheConfiguredOpenMpThreadCount) {
  InferencePool pool({.threads = 3, .intra_op_threads = 2, .max_queue = 16});
  std::mutex mutex;
  std::vector<int> seen;
  std::latch done(6);
  for (int i = 0; i < 6; ++i) {
    ASSERT_TRUE(pool.TrySubmit([&] {
      {
        std::lock_guard<std::mutex> lock(mutex);
        seen.push_back(omp_get_max_threads());
      }
      done.count_down();
    }));
  }
  done.wait();
  EXPECT_THAT(seen, ::testing::Each(2));
  EXPECT_EQ(pool.threads(), 3);
}

TEST(InferencePoolTest, TasksRunOnWorkerThreadsNotTheCaller) {
  InferencePool pool({.threads = 2, .intra_op_threads = 1, .max_queue = 64});
  std::mutex mutex;
  std::set<std::thread::id> ids;
  std::latch done(20);
  for (int i = 0; i < 20; ++i) {
    ASSERT_TRUE(pool.TrySubmit([&] {
      {
        std::lock_guard<std::mutex> lock(mutex);
        ids.insert(std::this_thread::get_id());
      }
      done.count_down();
    }));
  }
  done.wait();
  EXPECT_EQ(ids.count(std::this_thread::get_id()), 0u);
  EXPECT_LE(ids.size(), 2u);
}

}  // namespace
}  // namespace nnserve::server
