// RawChain: the baseline engine_bench compares the engine against — a plain
// oneDNN 2.6 (v2 API) chain of matmul primitives for one dense model at one
// batch size and one OpenMP thread count, written the way the oneDNN
// examples recommend and nothing more: weights created with
// format_tag::any and reordered once, bias passed to the matmul, the
// activation fused as an eltwise post-op, softmax as a separate in-place
// primitive at the end. Like the engine, it flushes subnormal weights and
// biases to zero (they would put every FMA touching them on a slow path).
// Everything is built in Create; Run only swaps data handles and executes.
//
// A RawChain owns its oneDNN engine, stream, primitives, reordered weights
// and intermediate buffers. It copies what it needs from the ModelSpec (the
// spec may be destroyed afterwards). Not thread-safe: one caller at a time.
#ifndef NNSERVE_BENCH_RAW_CHAIN_H_
#define NNSERVE_BENCH_RAW_CHAIN_H_

#include <cstdint>
#include <memory>
#include <span>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "engine/model_spec.h"

namespace nnserve::bench {

class RawChain {
 public:
  // Builds the chain for `spec` (weights [units, in] row-major, as in
  // ModelSpec) running `rows` rows per call with `threads` OpenMP threads.
  // The primitives are created with that thread count in effect (it stays
  // set on the calling thread), since oneDNN plans its parallel work split
  // at creation time.
  static absl::StatusOr<std::unique_ptr<RawChain>> Create(
      const engine::ModelSpec& spec, int64_t rows, int threads);

  RawChain(const RawChain&) = delete;
  RawChain& operator=(const RawChain&) = delete;
  ~RawChain();

  // input: [rows, input_size] row-major; output: [rows, output_size].
  // Sets the OpenMP thread count of the calling thread to threads().
  absl::Status Run(std::span<const float> input, std::span<float> output);

  int64_t rows() const { return rows_; }
  int threads() const { return threads_; }
  int64_t input_size() const { return input_size_; }
  int64_t output_size() const { return output_size_; }

 private:
  struct State;
  RawChain(std::unique_ptr<State> state, int64_t rows, int threads,
           int64_t input_size, int64_t output_size);

  std::unique_ptr<State> state_;
  int64_t rows_;
  int threads_;
  int64_t input_size_;
  int64_t output_size_;
};

}  // namespace nnserve::bench

#endif  // NNSERVE_BENCH_RAW_CHAIN_H_
