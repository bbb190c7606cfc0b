// SummaryReporter: a Google Benchmark console reporter that also collects
// engine_bench's paired runs (engine and raw oneDNN chain timed alternately
// in one benchmark, see engine_bench.cc) and, when the run ends, prints two
// tables: per (model, threads, batch, precision) the median over the
// repetitions of the engine and raw forward times, their GFLOP/s and the
// engine/raw speed ratio; and per (model, threads, batch) the BF16 and INT8
// engine speed-ups over FP32. Both flag cases that miss the targets.
// Everything in the tables comes from this run's measurements.
//
// The reporter owns its collected samples. Google Benchmark calls it from
// the thread running the benchmarks; it is not thread-safe otherwise.
#ifndef NNSERVE_BENCH_SUMMARY_REPORTER_H_
#define NNSERVE_BENCH_SUMMARY_REPORTER_H_

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "benchmark/benchmark.h"

namespace nnserve::bench {

// One measured case.
struct CaseKey {
  std::string model;
  int threads = 1;
  int64_t batch = 1;
  std::string precision = "FP32";  // "FP32", "BF16" or "INT8".
  auto operator<=>(const CaseKey&) const = default;
};

struct Targets {
  // Engine speed / raw speed must be at least this at batch >= min_batch.
  double min_ratio = 0.90;
  int64_t ratio_min_batch = 64;
  // Batch-1 FP32 forward limit for `latency_model`.
  std::string latency_model = "mlp-784";
  double max_batch1_us = 40.0;
  // Reduced precisions against FP32 (engine GFLOP/s ratios, same run): at
  // batch >= speedup_min_batch for `speedup_models`, and the batch-1 time
  // of `latency_model` as a fraction of FP32's.
  std::vector<std::string> speedup_models = {"mlp-784", "wide-4096"};
  int64_t speedup_min_batch = 64;
  double min_bf16_speedup = 1.7;
  double min_int8_speedup = 3.0;
  double max_bf16_batch1_fraction = 0.6;
  double max_int8_batch1_fraction = 0.4;
  // Cases whose forward times spread more than this (p75/p25, median over
  // repetitions) are marked noisy and not judged against the targets.
  double max_spread = 1.5;
  // ... or whose per-repetition ratios differ by more than this factor
  // (max / min); typical quiet cases stay within 1.06.
  double max_ratio_swing = 1.25;
};

class SummaryReporter : public benchmark::ConsoleReporter {
 public:
  explicit SummaryReporter(Targets targets);

  // Declares that the benchmark registered as `benchmark_name` measures
  // `key`, a forward of `flops_per_forward` FLOP, and reports the counters
  // engine_us, raw_us (median forward times), ratio and spread.
  void Register(const std::string& benchmark_name, const CaseKey& key,
                double flops_per_forward);

  void ReportRuns(const std::vector<Run>& runs) override;
  void Finalize() override;

  // Target misses, noisy cases (not judged) and failed cases; valid after
  // Finalize.
  int misses() const { return misses_; }
  int noisy() const { return noisy_; }
  int errors() const { return errors_; }

 private:
  struct Samples {
    // One entry per repetition (or one median aggregate, see ReportRuns).
    std::vector<double> engine_us, raw_us, ratio, spread;
    int64_t repetitions = 0;
    bool from_aggregate = false;  // Only median aggregates were reported.
    double flops_per_forward = 0;
    std::string error;
  };

  Targets targets_;
  std::map<std::string, CaseKey> by_name_;
  std::map<CaseKey, Samples> cases_;
  std::vector<CaseKey> order_;     // Registration order, for the table.
  std::set<CaseKey> noisy_cases_;  // Filled by Finalize.
  // The speed-up table (after the main one); counts its misses. Rows with a
  // noisy or failed case are shown but not judged.
  void PrintSpeedups(std::ostream& out);

  int misses_ = 0;
  int noisy_ = 0;
  int errors_ = 0;
};

}  // namespace nnserve::bench

#endif  // NNSERVE_BENCH_SUMMARY_REPORTER_H_
