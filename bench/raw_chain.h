// RawChain: the baseline engine_bench compares the engine against — a plain
// oneDNN 2.6 (v2 API) chain of matmul primitives for one dense model at one
// batch size, one OpenMP thread count and one precision, written the way
// the oneDNN examples recommend and nothing more: weights created with
// format_tag::any and reordered once, bias passed to the matmul, the
// activation fused as an eltwise post-op, softmax as a separate in-place
// primitive at the end. Like the engine, it flushes subnormal weights and
// biases to zero (they would put every FMA touching them on a slow path).
// Everything is built in Create; Run only swaps data handles and executes.
//
// The reduced precisions compute what the engine computes (batch_plan.h),
// with oneDNN primitives only:
//   BF16: a reorder converts the input to bf16; matmuls bf16 x bf16 with
//         f32 bias, bf16 hidden outputs, f32 last output.
//   INT8: weights quantized per output channel to s8 (same rounding as the
//         engine); per layer and call, two reduction primitives (min, max)
//         give the input's range, a reorder with runtime scale and zero
//         point quantizes it to u8 (the zero point only where the previous
//         activation can be negative), and the matmul dequantizes with the
//         per-channel output scales, a binary_mul post-op (activation
//         scale) and a binary_add post-op (bias), then the activation.
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
#include "engine/precision.h"

namespace nnserve::bench {

class RawChain {
 public:
  // Builds the chain for `spec` (weights [units, in] row-major, as in
  // ModelSpec) running `rows` rows per call with `threads` OpenMP threads.
  // The primitives are created with that thread count in effect (it stays
  // set on the calling thread), since oneDNN plans its parallel work split
  // at creation time.
  static absl::StatusOr<std::unique_ptr<RawChain>> Create(
      const engine::ModelSpec& spec, int64_t rows, int threads,
      engine::Precision precision = engine::Precision::kFp32);

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
