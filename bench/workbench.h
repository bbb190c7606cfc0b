// Workbench: what engine_bench's benchmarks share — the models, the engine
// Model per (model, thread count, precision), the raw oneDNN chain of the
// current case
// (only one at a time: the 4096-wide one holds ~200 MB), fixed-seed inputs
// and output buffers, and the once-per-case check that the engine and the
// raw chain compute the same outputs.
//
// Owns all of the above. Not thread-safe: Google Benchmark runs the
// benchmarks one at a time on the main thread.
#ifndef NNSERVE_BENCH_WORKBENCH_H_
#define NNSERVE_BENCH_WORKBENCH_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "bench/bench_models.h"
#include "bench/raw_chain.h"
#include "engine/model.h"

namespace nnserve::bench {

class Workbench {
 public:
  explicit Workbench(std::vector<BenchModel> models)
      : models_(std::move(models)) {}

  const std::vector<BenchModel>& models() const { return models_; }

  // The engine model for (model, threads, precision), built on first use
  // with every batch size in `batches` pre-warmed, then kept for the whole
  // run. A precision the CPU does not run natively is an error (the engine
  // would fall back to FP32).
  absl::StatusOr<const engine::Model*> EngineModel(
      const BenchModel& model, int threads, engine::Precision precision,
      const std::vector<int64_t>& batches);

  // The raw chain for (model, threads, rows, precision), replacing the
  // previous one. The first time a case is built, its output is checked
  // against `engine`'s on the same input; a mismatch is an Internal error
  // (then and on every later call for that case).
  absl::StatusOr<RawChain*> Chain(const BenchModel& model, int threads,
                                  int64_t rows, engine::Precision precision,
                                  const engine::Model& engine);

  // Fixed-seed inputs in [0, 1) and an output buffer for (model, rows).
  const std::vector<float>& Input(const BenchModel& model, int64_t rows);
  std::vector<float>& Output(const BenchModel& model, int64_t rows);

 private:
  using ChainKey = std::tuple<std::string, int, int64_t, engine::Precision>;

  absl::Status CompareOutputs(const BenchModel& model, int64_t rows,
                              engine::Precision precision,
                              const engine::Model& engine);

  std::vector<BenchModel> models_;
  std::map<std::tuple<std::string, int, engine::Precision>,
           std::shared_ptr<const engine::Model>>
      engine_models_;
  std::unique_ptr<RawChain> chain_;
  ChainKey chain_key_;
  std::map<ChainKey, absl::Status> verified_;
  std::map<std::pair<std::string, int64_t>, std::vector<float>> inputs_;
  std::map<std::pair<std::string, int64_t>, std::vector<float>> outputs_;
};

}  // namespace nnserve::bench

#endif  // NNSERVE_BENCH_WORKBENCH_H_
