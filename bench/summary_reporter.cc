#include "bench/summary_reporter.h"

#include <algorithm>
#include <ostream>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"

namespace nnserve::bench {
namespace {

// Median of a non-empty sample (mean of the middle two for even sizes).
double Median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  const size_t n = values.size();
  return n % 2 == 1 ? values[n / 2] : 0.5 * (values[n / 2 - 1] + values[n / 2]);
}

double CounterOr(const benchmark::UserCounters& counters,
                 const std::string& name, double fallback) {
  auto it = counters.find(name);
  return it == counters.end() ? fallback : it->second.value;
}

}  // namespace

SummaryReporter::SummaryReporter(Targets targets)
    : benchmark::ConsoleReporter(OO_Tabular), targets_(std::move(targets)) {}

void SummaryReporter::Register(const std::string& benchmark_name,
                               const CaseKey& key, double flops_per_forward) {
  by_name_[benchmark_name] = key;
  auto [it, inserted] = cases_.try_emplace(key);
  it->second.flops_per_forward = flops_per_forward;
  if (inserted) order_.push_back(key);
}

void SummaryReporter::ReportRuns(const std::vector<Run>& runs) {
  // Google Benchmark calls this once with a benchmark's repetitions and,
  // when repeated, once more with their aggregates (mean, median, stddev,
  // cv). The console shows the aggregates of repeated benchmarks, the runs
  // of single ones and any error. The summary uses the repetitions; with
  // --benchmark_display_aggregates_only only the aggregates arrive, and the
  // "median" aggregate stands in for them.
  std::vector<Run> shown;
  for (const Run& run : runs) {
    if (run.run_type == Run::RT_Aggregate || run.repetitions <= 1 ||
        run.error_occurred) {
      shown.push_back(run);
    }
  }
  if (!shown.empty()) benchmark::ConsoleReporter::ReportRuns(shown);

  for (const Run& run : runs) {
    auto key = by_name_.find(run.run_name.function_name);
    if (key == by_name_.end()) continue;
    Samples& samples = cases_[key->second];
    const bool aggregate = run.run_type == Run::RT_Aggregate;
    if (aggregate && (run.aggregate_name != "median" ||
                      samples.repetitions > 0 || !samples.error.empty())) {
      continue;  // Repetitions (or their error) already recorded.
    }
    if (run.error_occurred) {
      samples.error = run.error_message;
      continue;
    }
    const double engine_us = CounterOr(run.counters, "engine_us", -1);
    const double raw_us = CounterOr(run.counters, "raw_us", -1);
    if (engine_us <= 0 || raw_us <= 0) continue;
    samples.engine_us.push_back(engine_us);
    samples.raw_us.push_back(raw_us);
    samples.ratio.push_back(CounterOr(run.counters, "ratio", 0));
    samples.spread.push_back(CounterOr(run.counters, "spread", 1));
    samples.repetitions += aggregate ? run.repetitions : 1;
    samples.from_aggregate = aggregate;
  }
}

void SummaryReporter::Finalize() {
  std::ostream& out = GetOutputStream();
  out << "\nSummary. Engine and raw chain run in alternating blocks of "
         "forwards (~2 ms each) within each repetition.\n"
         "engine_us, raw_us: median forward, median over repetitions (taken "
         "per column, so on a loaded machine they may come\n"
         "  from different repetitions); GFLOP/s = 2*rows*sum(in*out) / that "
         "time.\n"
         "ratio: engine speed / raw oneDNN chain speed = raw_us / engine_us "
         "within a repetition (same load on both sides),\n"
         "  median over repetitions; ratio_range: its min-max over "
         "repetitions.\n"
      << absl::StrFormat(
             "Targets: ratio >= %.2f at batch >= %d; %s batch 1 <= %.0f us. "
             "NOISY (p75/p25 of forwards > %.1f, or ratio max/min over "
             "repetitions > %.2f): not judged.\n",
             targets_.min_ratio, targets_.ratio_min_batch,
             targets_.latency_model, targets_.max_batch1_us,
             targets_.max_spread, targets_.max_ratio_swing);
  out << absl::StrFormat(
      "%-10s %5s %7s %6s %12s %12s %10s %10s %7s %11s %4s  %s\n", "model",
      "prec", "threads", "batch", "engine_us", "raw_us", "eng_GFLOPs",
      "raw_GFLOPs", "ratio", "ratio_range", "reps", "note");
  misses_ = 0;
  noisy_ = 0;
  errors_ = 0;
  for (const CaseKey& key : order_) {
    const Samples& s = cases_.at(key);
    if (!s.error.empty()) {
      ++errors_;
      out << absl::StrFormat("%-10s %5s %7d %6d ERROR: %s\n", key.model,
                             key.precision, key.threads, key.batch, s.error);
      continue;
    }
    if (s.engine_us.empty()) continue;  // Filtered out of this run.
    const double engine_us = Median(s.engine_us);
    const double raw_us = Median(s.raw_us);
    const double ratio = Median(s.ratio);
    const double spread = Median(s.spread);
    const auto [low, high] =
        std::minmax_element(s.ratio.begin(), s.ratio.end());
    const double ratio_swing = *high / *low;
    std::string note;
    if (spread > targets_.max_spread ||
        ratio_swing > targets_.max_ratio_swing) {
      noisy_cases_.insert(key);
    }
    if (spread > targets_.max_spread) {
      note = absl::StrFormat(
          "NOISY: p75/p25 %.1f, preempted forwards; not judged", spread);
      ++noisy_;
    } else if (ratio_swing > targets_.max_ratio_swing) {
      note = absl::StrFormat(
          "NOISY: ratio varies %.2fx between repetitions; not judged",
          ratio_swing);
      ++noisy_;
    } else {
      if (key.batch >= targets_.ratio_min_batch && ratio < targets_.min_ratio) {
        note = absl::StrFormat("MISS: engine below %.0f%% of raw",
                               100 * targets_.min_ratio);
        ++misses_;
      }
      if (key.batch == 1 && key.model == targets_.latency_model &&
          key.precision == "FP32" && engine_us > targets_.max_batch1_us) {
        absl::StrAppend(&note, note.empty() ? "" : "; ",
                        absl::StrFormat("MISS: batch 1 above %.0f us",
                                        targets_.max_batch1_us));
        ++misses_;
      }
    }
    const std::string range =
        s.from_aggregate ? "n/a" : absl::StrFormat("%4.2f-%4.2f", *low, *high);
    out << absl::StrFormat(
        "%-10s %5s %7d %6d %12.2f %12.2f %10.1f %10.1f %7.3f %11s %4d  %s\n",
        key.model, key.precision, key.threads, key.batch, engine_us, raw_us,
        s.flops_per_forward / engine_us * 1e-3,
        s.flops_per_forward / raw_us * 1e-3, ratio, range, s.repetitions, note);
  }
  PrintSpeedups(out);
  out << absl::StrFormat(
      "%d target miss(es), %d noisy case(s) not judged, %d failed case(s).\n",
      misses_, noisy_, errors_);
  out.flush();
}

void SummaryReporter::PrintSpeedups(std::ostream& out) {
  // Median engine time of each case that has one.
  auto engine_us = [&](CaseKey key, const std::string& precision) {
    key.precision = precision;
    auto it = cases_.find(key);
    if (it == cases_.end() || !it->second.error.empty() ||
        it->second.engine_us.empty()) {
      return -1.0;
    }
    return Median(it->second.engine_us);
  };
  bool header = false;
  for (const CaseKey& key : order_) {
    if (key.precision != "FP32") continue;
    const double fp32 = engine_us(key, "FP32");
    const double bf16 = engine_us(key, "BF16");
    const double int8 = engine_us(key, "INT8");
    if (fp32 <= 0 || (bf16 <= 0 && int8 <= 0)) continue;
    if (!header) {
      out << absl::StrFormat(
          "\nReduced precision: engine speed-up over FP32 (= FP32 engine_us / "
          "engine_us, same run).\nTargets: at batch >= %d for %s: BF16 >= "
          "%.1fx, INT8 >= %.1fx; %s batch 1: BF16 <= %.1f, INT8 <= %.1f of "
          "the FP32 time.\n",
          targets_.speedup_min_batch,
          absl::StrJoin(targets_.speedup_models, ", "),
          targets_.min_bf16_speedup, targets_.min_int8_speedup,
          targets_.latency_model, targets_.max_bf16_batch1_fraction,
          targets_.max_int8_batch1_fraction);
      out << absl::StrFormat("%-10s %7s %6s %12s %12s %8s %12s %8s  %s\n",
                             "model", "threads", "batch", "fp32_us", "bf16_us",
                             "bf16_x", "int8_us", "int8_x", "note");
      header = true;
    }
    CaseKey bf16_key = key, int8_key = key;
    bf16_key.precision = "BF16";
    int8_key.precision = "INT8";
    const bool noisy = noisy_cases_.contains(key) ||
                       noisy_cases_.contains(bf16_key) ||
                       noisy_cases_.contains(int8_key);
    const bool judged_throughput =
        !noisy && key.batch >= targets_.speedup_min_batch &&
        std::find(targets_.speedup_models.begin(),
                  targets_.speedup_models.end(),
                  key.model) != targets_.speedup_models.end();
    const bool judged_latency =
        !noisy && key.batch == 1 && key.model == targets_.latency_model;
    std::string note = noisy ? "NOISY: not judged" : "";
    auto check = [&](const char* name, double us, double min_speedup,
                     double max_fraction) {
      if (us <= 0) return;
      const double speedup = fp32 / us;
      if ((judged_throughput && speedup < min_speedup) ||
          (judged_latency && us / fp32 > max_fraction)) {
        absl::StrAppend(&note, note.empty() ? "" : "; ", "MISS: ", name);
        ++misses_;
      }
    };
    check("BF16", bf16, targets_.min_bf16_speedup,
          targets_.max_bf16_batch1_fraction);
    check("INT8", int8, targets_.min_int8_speedup,
          targets_.max_int8_batch1_fraction);
    auto cell = [](double us) {
      return us > 0 ? absl::StrFormat("%12.2f", us) : std::string(12, '-');
    };
    auto factor = [&](double us) {
      return us > 0 ? absl::StrFormat("%7.2fx", fp32 / us)
                    : std::string(8, '-');
    };
    out << absl::StrFormat("%-10s %7d %6d %12.2f %s %s %s %s  %s\n", key.model,
                           key.threads, key.batch, fp32, cell(bf16),
                           factor(bf16), cell(int8), factor(int8), note);
  }
}

}  // namespace nnserve::bench
