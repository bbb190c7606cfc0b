// engine_bench: forward-pass time and GFLOP/s of the nnserve engine beside a
// raw oneDNN matmul chain of the same shapes and precision, measured in the
// same run, for digits, mlp-784 and a generated 4096-wide model at several
// batch sizes, OpenMP thread counts and precisions (FP32, BF16, INT8). See
// bench/README.md.
//
// Own flags (everything else goes to Google Benchmark):
//   --model_repository=DIR  where digits/ and mlp-784/ live
//   --models=a,b,c          subset of digits,mlp-784,wide-4096
//   --threads=1,2           EngineOptions::intra_op_threads values
//   --batches=1,8,...       rows per forward
//   --precisions=fp32,...   subset of fp32,bf16,int8
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "bench/bench_models.h"
#include "bench/raw_chain.h"
#include "bench/summary_reporter.h"
#include "bench/workbench.h"
#include "benchmark/benchmark.h"
#include "engine/model.h"
#include "engine/precision.h"

namespace nnserve::bench {
namespace {

struct Options {
  std::filesystem::path repository = NNSERVE_BENCH_DEFAULT_REPOSITORY;
  std::vector<std::string> models = {"digits", "mlp-784", "wide-4096"};
  std::vector<int> threads = {1, 2};
  std::vector<int64_t> batches = {1, 8, 64, 256, 1024};
  std::vector<engine::Precision> precisions = {engine::Precision::kFp32,
                                               engine::Precision::kBf16,
                                               engine::Precision::kInt8};
};

// Defaults put before the user's arguments (later flags win).
constexpr const char* kDefaultBenchmarkFlags[] = {
    "--benchmark_repetitions=3",
    "--benchmark_enable_random_interleaving=true",
    "--benchmark_min_time=0.2",
};

// The q-quantile (0 <= q < 1, nearest rank) of a non-empty sample, which
// it reorders.
double Quantile(std::vector<double>& values, double q) {
  const size_t k = static_cast<size_t>(q * static_cast<double>(values.size()));
  std::nth_element(values.begin(), values.begin() + k, values.end());
  return values[k];
}

// p75 / p25 of a sample: ~1 on a quiet machine; far above 1 when the
// forwards split into fast ones and preempted ones, where medians stop
// being comparable.
double Spread(std::vector<double>& values) {
  return Quantile(values, 0.75) / Quantile(values, 0.25);
}

// Forwards per block: enough for ~2 ms, so that a block's first, cache-cold
// forward (the other side's weights were just used) is a minority that the
// median ignores; at least 3 when blocking at all.
int64_t BlockSize(double forward_seconds) {
  const double target = 2e-3;
  if (forward_seconds >= target / 2) return 1;
  return std::clamp<int64_t>(static_cast<int64_t>(target / forward_seconds), 3,
                             256);
}

// One case: the engine and the raw chain run on the same input in
// alternating blocks of consecutive forwards (BlockSize), so both see the
// same machine conditions and each runs with its own weights warm in cache.
// Each benchmark iteration is one engine forward; its time is the manual
// iteration time. After every block of engine forwards the same number of
// raw-chain forwards run, timed one by one but outside the benchmark time.
// Counters: FLOPS (engine FLOP/s, mean over the run), raw_FLOPS (raw chain,
// mean), engine_us and raw_us (median forward times; medians keep forwards
// preempted on this shared machine from skewing the result), ratio =
// raw_us / engine_us (engine speed relative to the raw chain), block and
// spread (the larger p75/p25 of the two sides).
void PairedForward(benchmark::State& state, Workbench& bench,
                   const BenchModel& model, int threads, int64_t rows,
                   engine::Precision precision,
                   const std::vector<int64_t>& batches) {
  using Clock = std::chrono::steady_clock;
  absl::StatusOr<const engine::Model*> engine =
      bench.EngineModel(model, threads, precision, batches);
  if (!engine.ok()) {
    state.SkipWithError(engine.status().ToString().c_str());
    return;
  }
  absl::StatusOr<RawChain*> chain =
      bench.Chain(model, threads, rows, precision, **engine);
  if (!chain.ok()) {
    state.SkipWithError(chain.status().ToString().c_str());
    return;
  }
  const std::vector<float>& input = bench.Input(model, rows);
  std::vector<float>& output = bench.Output(model, rows);
  std::vector<double> engine_times, raw_times;
  // Time forwards one by one into each side's vector.
  auto time_engine = [&]() -> absl::Status {
    const Clock::time_point start = Clock::now();
    absl::Status s = (*engine)->Forward(input, rows, output);
    engine_times.push_back(
        std::chrono::duration<double>(Clock::now() - start).count());
    return s;
  };
  auto time_raw = [&](int64_t count) -> absl::Status {
    for (int64_t i = 0; i < count; ++i) {
      const Clock::time_point start = Clock::now();
      absl::Status s = (*chain)->Run(input, output);
      raw_times.push_back(
          std::chrono::duration<double>(Clock::now() - start).count());
      if (!s.ok()) return s;
    }
    return absl::OkStatus();
  };
  // Warm-up (untimed for the result): wakes the OpenMP team, touches the
  // buffers and estimates the forward time for the block size. Forwards
  // over 10 ms need no more than one round.
  for (int i = 0; i < 3; ++i) {
    for (const absl::Status& s : {time_engine(), time_raw(1)}) {
      if (!s.ok()) {
        state.SkipWithError(s.ToString().c_str());
        return;
      }
    }
    if (engine_times.back() > 10e-3) break;
  }
  const int64_t block = BlockSize(
      std::min(*std::min_element(engine_times.begin(), engine_times.end()),
               *std::min_element(raw_times.begin(), raw_times.end())));
  engine_times.clear();
  raw_times.clear();
  const size_t expected = static_cast<size_t>(
      std::min<benchmark::IterationCount>(state.max_iterations, 1 << 20));
  engine_times.reserve(expected);
  raw_times.reserve(expected + static_cast<size_t>(block));

  int64_t in_block = 0;
  for (auto _ : state) {
    absl::Status s = time_engine();
    if (s.ok() && ++in_block == block) {
      s = time_raw(block);
      in_block = 0;
    }
    if (!s.ok()) {
      state.SkipWithError(s.ToString().c_str());
      break;
    }
    state.SetIterationTime(engine_times.back());
  }
  if (state.error_occurred()) return;
  // Balance the last, partial block.
  if (absl::Status s = time_raw(in_block); !s.ok()) {
    state.SkipWithError(s.ToString().c_str());
    return;
  }
  if (engine_times.empty()) return;

  const double flops = static_cast<double>(model.FlopsPerRow() * rows);
  double raw_total = 0;
  for (double t : raw_times) raw_total += t;
  // Engine FLOP/s: a rate over the benchmark's (manual = engine) time.
  state.counters["FLOPS"] =
      benchmark::Counter(flops, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["raw_FLOPS"] =
      flops * static_cast<double>(raw_times.size()) / raw_total;
  const double engine_us = Quantile(engine_times, 0.5) * 1e6;
  const double raw_us = Quantile(raw_times, 0.5) * 1e6;
  state.counters["engine_us"] = engine_us;
  state.counters["raw_us"] = raw_us;
  state.counters["ratio"] = raw_us / engine_us;
  state.counters["block"] = static_cast<double>(block);
  state.counters["spread"] = std::max(Spread(engine_times), Spread(raw_times));
}

template <typename T>
bool ParseList(std::string_view text, std::vector<T>& out) {
  out.clear();
  // Debian's Abseil has its own absl::string_view (not std::string_view).
  for (absl::string_view part :
       absl::StrSplit(absl::string_view(text.data(), text.size()), ',')) {
    T value;
    if (!absl::SimpleAtoi(part, &value) || value < 1) return false;
    out.push_back(value);
  }
  return !out.empty();
}

// Removes this program's own flags from argv; returns false (after saying
// why) on a malformed value.
bool ParseOwnFlags(int& argc, char** argv, Options& options) {
  int kept = 1;
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    auto value_of =
        [&](std::string_view flag) -> std::optional<std::string_view> {
      if (arg.substr(0, flag.size()) == flag) return arg.substr(flag.size());
      return std::nullopt;
    };
    if (auto v = value_of("--model_repository=")) {
      options.repository = std::string(*v);
    } else if (auto v = value_of("--models=")) {
      options.models = absl::StrSplit(std::string(*v), ',', absl::SkipEmpty());
      for (const std::string& name : options.models) {
        if (name != "digits" && name != "mlp-784" && name != "wide-4096") {
          std::cerr << "--models: unknown model '" << name
                    << "'; expected a comma list of digits, mlp-784, "
                       "wide-4096\n";
          return false;
        }
      }
    } else if (auto v = value_of("--threads=")) {
      if (!ParseList(*v, options.threads)) {
        std::cerr << "--threads: expected a comma list of positive integers, "
                     "got '"
                  << *v << "'\n";
        return false;
      }
    } else if (auto v = value_of("--precisions=")) {
      options.precisions.clear();
      const std::vector<std::string> names =
          absl::StrSplit(std::string(*v), ',', absl::SkipEmpty());
      for (const std::string& name : names) {
        std::optional<engine::Precision> precision =
            engine::ParsePrecision(name);
        if (!precision.has_value()) {
          std::cerr << "--precisions: unknown precision '" << name
                    << "'; expected a comma list of fp32, bf16, int8\n";
          return false;
        }
        options.precisions.push_back(*precision);
      }
      if (options.precisions.empty()) {
        std::cerr << "--precisions: expected at least one of fp32, bf16, "
                     "int8\n";
        return false;
      }
    } else if (auto v = value_of("--batches=")) {
      if (!ParseList(*v, options.batches)) {
        std::cerr << "--batches: expected a comma list of positive integers, "
                     "got '"
                  << *v << "'\n";
        return false;
      }
    } else {
      argv[kept++] = argv[i];
    }
  }
  argc = kept;
  return true;
}

// --help: this program's own flags, then Google Benchmark's.
void PrintHelp() {
  std::cout
      << "engine_bench: nnserve engine forward pass vs a raw oneDNN chain.\n"
         "  --model_repository=DIR  where digits/ and mlp-784/ are (default "
      << NNSERVE_BENCH_DEFAULT_REPOSITORY
      << ")\n"
         "  --models=a,b            subset of digits,mlp-784,wide-4096\n"
         "  --threads=1,2           EngineOptions::intra_op_threads values\n"
         "  --batches=1,8,64,256,1024  rows per forward\n"
         "  --precisions=fp32,bf16,int8  engine and raw chain precisions\n"
         "Defaults given to Google Benchmark (override them):";
  for (const char* flag : kDefaultBenchmarkFlags) std::cout << " " << flag;
  std::cout << "\n\n";
  benchmark::PrintDefaultHelp();
}

absl::StatusOr<BenchModel> LoadNamed(const Options& options,
                                     const std::string& name) {
  using engine::Activation;
  if (name == "digits") {
    return LoadOrGenerateModel(
        options.repository, "digits", 64,
        {{32, Activation::kRelu}, {10, Activation::kSoftmax}}, /*seed=*/64);
  }
  if (name == "mlp-784") {
    return LoadOrGenerateModel(options.repository, "mlp-784", 784,
                               {{512, Activation::kRelu},
                                {512, Activation::kRelu},
                                {10, Activation::kSoftmax}},
                               /*seed=*/784);
  }
  return GenerateModel("wide-4096", 4096,
                       {{4096, Activation::kRelu},
                        {4096, Activation::kRelu},
                        {4096, Activation::kRelu},
                        {10, Activation::kSoftmax}},
                       /*seed=*/4096);
}

int Main(int argc, char** argv) {
  Options options;
  if (!ParseOwnFlags(argc, argv, options)) return 2;
  std::vector<char*> args = {argv[0]};
  for (const char* flag : kDefaultBenchmarkFlags) {
    args.push_back(const_cast<char*>(flag));
  }
  args.insert(args.end(), argv + 1, argv + argc);
  int args_count = static_cast<int>(args.size());
  benchmark::Initialize(&args_count, args.data(), PrintHelp);
  if (benchmark::ReportUnrecognizedArguments(args_count, args.data())) {
    return 2;
  }

  std::vector<BenchModel> models;
  for (const std::string& name : options.models) {
    absl::StatusOr<BenchModel> model = LoadNamed(options, name);
    if (!model.ok()) {
      std::cerr << "engine_bench: cannot load " << name << ": "
                << model.status() << "\n";
      return 1;
    }
    std::cout << absl::StrCat(model->name, ": ", model->ShapeString(), "; ",
                              model->FlopsPerRow(), " FLOP per row; ",
                              model->source, "\n");
    if (const int64_t subnormal = model->SubnormalParameters(); subnormal > 0) {
      std::cout << "  note: " << model->name << " has " << subnormal
                << " subnormal weight/bias values (0 < |x| < 2^-126); the "
                   "engine and the raw chain both flush them to zero (on "
                   "this CPU they put FMAs on a slow path).\n";
    }
    models.push_back(*std::move(model));
  }
  const engine::PrecisionSupport& support = engine::DetectedPrecisionSupport();
  std::cout << "oneDNN effective ISA " << support.isa << "; native BF16 "
            << (support.bf16 ? "yes" : "no") << ", INT8 "
            << (support.int8 ? "yes" : "no") << "\n";
  std::cout << "OpenMP max threads " << omp_get_max_threads()
            << "; OMP_WAIT_POLICY="
            << (std::getenv("OMP_WAIT_POLICY") ? std::getenv("OMP_WAIT_POLICY")
                                               : "(unset)")
            << std::endl;

  Workbench bench(std::move(models));
  SummaryReporter reporter{Targets{}};
  for (const BenchModel& model : bench.models()) {
    for (int threads : options.threads) {
      for (int64_t rows : options.batches) {
        for (engine::Precision precision : options.precisions) {
          const std::string precision_name(engine::PrecisionName(precision));
          const std::string name =
              absl::StrCat("forward/", model.name, "/", precision_name,
                           "/threads:", threads, "/batch:", rows);
          benchmark::RegisterBenchmark(
              name.c_str(),
              [&bench, &model, threads, rows, precision,
               &batches = options.batches](benchmark::State& state) {
                PairedForward(state, bench, model, threads, rows, precision,
                              batches);
              })
              ->UseManualTime()
              ->Unit(benchmark::kMicrosecond);
          reporter.Register(name,
                            CaseKey{model.name, threads, rows, precision_name},
                            static_cast<double>(model.FlopsPerRow() * rows));
        }
      }
    }
  }
  benchmark::RunSpecifiedBenchmarks(&reporter);
  benchmark::Shutdown();
  return reporter.errors() > 0 ? 1 : 0;
}

}  // namespace
}  // namespace nnserve::bench

int main(int argc, char** argv) { return nnserve::bench::Main(argc, argv); }
