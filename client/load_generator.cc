#include "client/load_generator.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <vector>

#include <grpcpp/client_context.h>
#include <sys/resource.h>

#include "absl/strings/str_cat.h"
#include "client/status.h"
#include "common/code_names.h"

namespace nnserve {
namespace {

using Clock = std::chrono::steady_clock;

constexpr int kCodeSlots = 18;  // 17 gRPC codes + "BAD_RESPONSE".
constexpr int kBadResponse = 17;

// User + system CPU time of this process (all threads), in seconds.
double ProcessCpuSeconds() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return usage.ru_utime.tv_sec + usage.ru_stime.tv_sec +
         (usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6;
}

// One in-flight call position. Only one call per slot is outstanding at a
// time, so a slot's fields are touched by one completion at a time.
struct Slot {
  class LoadRun* run = nullptr;
  std::optional<grpc::ClientContext> context;
  v1::PredictResponse response;
  Clock::time_point start;
  std::vector<int64_t> latencies_ns;
  std::array<int64_t, kCodeSlots> errors{};
};

class LoadRun {
 public:
  LoadRun(v1::Inference::Stub& stub, const v1::PredictRequest& request,
          const LoadOptions& options, int64_t batch_rows)
      : stub_(stub),
        request_(request),
        options_(options),
        batch_rows_(batch_rows),
        slots_(options.concurrency) {}

  LoadReport Run() {
    const Clock::time_point now = Clock::now();
    measure_begin_ =
        now + std::chrono::duration_cast<Clock::duration>(options_.warmup);
    measure_end_ = measure_begin_ + std::chrono::duration_cast<Clock::duration>(
                                        options_.duration);
    const double expected_calls_per_slot = std::min(
        1e6, options_.duration.count() * 50000.0 / options_.concurrency);
    active_ = options_.concurrency;
    for (Slot& slot : slots_) {
      slot.run = this;
      slot.latencies_ns.reserve(static_cast<size_t>(expected_calls_per_slot));
    }
    for (Slot& slot : slots_) Issue(slot);
    // Sample this process's CPU time at both ends of the measured window.
    double cpu_seconds = 0;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      done_cv_.wait_until(lock, measure_begin_,
                          [this] { return active_ == 0; });
      cpu_seconds = -ProcessCpuSeconds();
      done_cv_.wait_until(lock, measure_end_, [this] { return active_ == 0; });
      cpu_seconds += ProcessCpuSeconds();
      done_cv_.wait(lock, [this] { return active_ == 0; });
    }
    LoadReport report = Summarize();
    report.client_cpu_seconds = cpu_seconds;
    if (report.calls + report.failed_calls > 0) {
      report.client_cpu_us_per_call =
          cpu_seconds * 1e6 / (report.calls + report.failed_calls);
    }
    return report;
  }

 private:
  void Issue(Slot& slot) {
    slot.context.emplace();
    ConfigureContext(options_.call, &*slot.context);
    slot.start = Clock::now();
    Slot* s = &slot;
    stub_.async()->Predict(
        &*slot.context, &request_, &slot.response,
        [s](grpc::Status status) { s->run->OnDone(*s, status); });
  }

  void OnDone(Slot& slot, const grpc::Status& status) {
    const Clock::time_point end = Clock::now();
    if (slot.start >= measure_begin_ && end <= measure_end_) {
      if (!status.ok()) {
        const int code = static_cast<int>(status.error_code());
        ++slot.errors[code >= 0 && code < kBadResponse ? code : 2];
      } else if (slot.response.output().shape_size() == 0 ||
                 (slot.response.output().shape_size() == 2 &&
                  slot.response.output().shape(0) != batch_rows_)) {
        ++slot.errors[kBadResponse];
      } else {
        slot.latencies_ns.push_back(
            std::chrono::duration_cast<std::chrono::nanoseconds>(end -
                                                                 slot.start)
                .count());
      }
    }
    if (end < measure_end_) {
      Issue(slot);
      return;
    }
    std::lock_guard<std::mutex> lock(mutex_);
    if (--active_ == 0) done_cv_.notify_one();
  }

  LoadReport Summarize() {
    LoadReport report;
    report.concurrency = options_.concurrency;
    report.batch_rows = batch_rows_;
    report.seconds = options_.duration.count();
    std::vector<int64_t> all;
    std::array<int64_t, kCodeSlots> errors{};
    for (const Slot& slot : slots_) {
      all.insert(all.end(), slot.latencies_ns.begin(), slot.latencies_ns.end());
      for (int i = 0; i < kCodeSlots; ++i) errors[i] += slot.errors[i];
    }
    std::sort(all.begin(), all.end());
    report.calls = static_cast<int64_t>(all.size());
    report.rows = report.calls * batch_rows_;
    report.calls_per_second = report.calls / report.seconds;
    report.rows_per_second = report.rows / report.seconds;
    if (!all.empty()) {
      double sum = 0;
      for (int64_t v : all) sum += static_cast<double>(v);
      report.mean_us = sum / all.size() / 1e3;
      report.p50_us = NearestRankQuantile(all, 0.50) / 1e3;
      report.p90_us = NearestRankQuantile(all, 0.90) / 1e3;
      report.p99_us = NearestRankQuantile(all, 0.99) / 1e3;
      report.max_us = all.back() / 1e3;
    }
    for (int i = 0; i < kCodeSlots; ++i) {
      if (errors[i] == 0) continue;
      report.failed_calls += errors[i];
      report.errors[i == kBadResponse ? std::string("BAD_RESPONSE")
                                      : StatusCodeName(i)] = errors[i];
    }
    return report;
  }

  v1::Inference::Stub& stub_;
  const v1::PredictRequest& request_;
  const LoadOptions options_;
  const int64_t batch_rows_;
  std::vector<Slot> slots_;
  Clock::time_point measure_begin_;
  Clock::time_point measure_end_;
  std::mutex mutex_;
  std::condition_variable done_cv_;
  int active_ = 0;
};

}  // namespace

double NearestRankQuantile(const std::vector<int64_t>& sorted, double q) {
  if (sorted.empty()) return 0;
  const double rank = std::ceil(q * static_cast<double>(sorted.size()));
  const size_t index =
      static_cast<size_t>(std::clamp(rank, 1.0, double(sorted.size()))) - 1;
  return static_cast<double>(sorted[index]);
}

absl::StatusOr<LoadReport> RunLoad(v1::Inference::Stub& stub,
                                   const v1::PredictRequest& request,
                                   const LoadOptions& options) {
  if (options.concurrency < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("concurrency must be >= 1; found ", options.concurrency));
  }
  if (!(options.duration.count() > 0)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "duration must be > 0 seconds; found ", options.duration.count()));
  }
  if (options.warmup.count() < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "warm-up must be >= 0 seconds; found ", options.warmup.count()));
  }
  const v1::Tensor& input = request.input();
  if (input.shape_size() != 1 && input.shape_size() != 2) {
    return absl::InvalidArgumentError(
        "request input tensor must have shape [rows, features] or "
        "[features]");
  }
  const int64_t batch_rows = input.shape_size() == 2 ? input.shape(0) : 1;
  LoadRun run(stub, request, options, batch_rows);
  return run.Run();
}

}  // namespace nnserve
