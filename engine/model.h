// Model: a loaded dense network ready to run forward passes with oneDNN on
// CPU. Built once by Model::Create (or LoadModel in repository.h) and then
// immutable: share it as std::shared_ptr<const Model> among in-flight
// requests. Forward() is thread-safe and may be called from many threads at
// once; each call runs on the calling thread.
//
// Everything expensive happens in Create: weights are converted to the
// model's precision (FP32, BF16 or INT8, see precision.h and batch_plan.h)
// and reordered once into the layout oneDNN prefers, matmul primitives (bias
// and activation fused as post-ops) and softmax primitives are built for the
// pre-warmed batch sizes, a BF16/INT8 model's accuracy is probed against an
// FP32 plan of the same weights, and one warm-up forward pass of one row
// runs.
// Other batch sizes get their primitives built on first use and cached.
// Plans exist only for 1..64 rows and multiples of 64 up to 1024; a forward
// of any other size runs as at most two such chunks per 1024 rows, so the
// cache stays small (≤ 79 plans) whatever sizes callers send.
#ifndef NNSERVE_ENGINE_MODEL_H_
#define NNSERVE_ENGINE_MODEL_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "engine/model_spec.h"
#include "engine/precision.h"

namespace nnserve::engine {

// How a model executes. Threading model (see README "Threading"): a Forward
// call runs on the caller's thread with `intra_op_threads` OpenMP threads.
// The default of 1 avoids OpenMP spin-waits; parallelism comes from running
// several requests on several threads at once.
struct EngineOptions {
  int intra_op_threads = 1;
  // Batch sizes whose primitives are built at load time (each also builds
  // the plans its chunks use; {1, ..., N} prepares every size up to N).
  std::vector<int64_t> prewarm_batch_sizes = {1};
  // Overrides the precision every model's config asks for (`nnserve run
  // --precision`); nullopt = as configured.
  std::optional<Precision> precision_override = std::nullopt;
  // The reduced-precision support to assume, intersected with what the CPU
  // has (DetectedPrecisionSupport()); `isa` replaces the reported ISA when
  // non-empty. Clearing a flag makes models that request that precision
  // load in FP32 with a fallback reason, exactly as on a CPU without it (to
  // switch a precision off, or to see how a model loads on such a CPU).
  // Setting a flag the CPU lacks changes nothing: precisions are never
  // emulated. nullopt = the CPU's own support.
  std::optional<PrecisionSupport> cpu_support = std::nullopt;
};

struct TensorStats {
  double mean = 0, std = 0, min = 0, max = 0;  // std is the population std.
};

struct LayerInfo {
  std::string name;
  int64_t input_size = 0;
  int64_t output_size = 0;
  Activation activation = Activation::kIdentity;
  float alpha = 0.0f;
  bool has_bias = false;
  int64_t parameters = 0;  // Weights plus biases.
  TensorStats weight;
  TensorStats bias;  // Zeros when !has_bias.
};

// A description of a loaded model, for `nnserve inspect` and ModelInfo.
struct ModelInfo {
  std::string name;
  int64_t version = 0;
  std::string input_name;
  int64_t input_size = 0;
  std::string output_name;
  int64_t output_size = 0;
  std::vector<std::string> labels;
  WeightLayout weight_layout = WeightLayout::kOutIn;
  std::vector<LayerInfo> layers;
  int64_t total_parameters = 0;
  int64_t weight_bytes = 0;  // f32 bytes of all weights and biases.
  double load_seconds = 0;   // File reading + validation + oneDNN setup.
  // Requested and effective precision, kernels and, for BF16/INT8, the
  // per-layer deviation from FP32 measured at load.
  PrecisionReport precision;
};

// Where ForwardWithLayers writes one layer's output: [rows, units] floats.
struct LayerOutput {
  size_t layer = 0;  // Index into ModelInfo::layers.
  std::span<float> values;
};

class Model {
 public:
  // Builds the oneDNN execution plan for `spec` and runs a one-row warm-up
  // forward pass (its failure fails Create). `read_seconds` is the time the
  // caller spent reading files, added into info().load_seconds.
  // Precision: spec.precision unless options.precision_override; FP32 (with
  // info().precision.fallback_reason set) when the CPU lacks native support.
  // A BF16/INT8 model runs spec.probe (or a generated batch) through an FP32
  // plan and its own and records each layer's deviation; if one exceeds
  // spec.max_precision_deviation (relative L2, 0 = no limit), Create fails
  // with FailedPrecondition naming the layer.
  // Nothing escapes as an exception: an allocation failure (std::bad_alloc
  // or oneDNN out of memory) is ResourceExhausted, any other oneDNN error
  // or std::exception Internal, naming the model.
  // Subnormal weights and biases are flushed to zero for execution (x86
  // runs them through slow microcode assists); info() describes the values
  // as given.
  static absl::StatusOr<std::shared_ptr<const Model>> Create(
      ModelSpec spec, int64_t version, const EngineOptions& options,
      double read_seconds = 0);

  Model(const Model&) = delete;
  Model& operator=(const Model&) = delete;
  ~Model();

  const ModelInfo& info() const;
  int64_t input_size() const { return info().input_size; }
  int64_t output_size() const { return info().output_size; }
  size_t num_layers() const { return info().layers.size(); }

  // Runs `rows` rows: input is [rows, input_size] row-major, output
  // [rows, output_size]. If `layer_seconds` is non-empty it must have
  // num_layers() entries and receives each layer's wall time (softmax
  // included in its layer). Returns InvalidArgument on size mismatches and
  // ResourceExhausted when memory runs out, Internal if oneDNN fails; no
  // exception escapes. Thread-safe; nnserve code makes no heap
  // allocation in steady state for batch sizes seen before (oneDNN 2.6's
  // dnnl_primitive_execute itself allocates its argument map: ~7 small
  // allocations per primitive run).
  absl::Status Forward(std::span<const float> input, int64_t rows,
                       std::span<float> output,
                       std::span<double> layer_seconds = {}) const;

  // Forward that also copies the outputs of the layers in `layers` (after
  // each layer's activation, as float32, exactly the values the pass feeds
  // to the next layer or writes to `output`) into the caller's spans: each
  // LayerOutput names a layer index below num_layers() (each at most once)
  // and has room for rows x that layer's units. InvalidArgument otherwise.
  // Hidden-layer outputs cost a stream synchronisation per layer; `layers`
  // empty is exactly Forward.
  absl::Status ForwardWithLayers(std::span<const float> input, int64_t rows,
                                 std::span<float> output,
                                 std::span<const LayerOutput> layers,
                                 std::span<double> layer_seconds = {}) const;

 private:
  class Impl;
  explicit Model(std::unique_ptr<Impl> impl);
  // Create without the exception boundary.
  static absl::StatusOr<std::shared_ptr<const Model>> CreateOrThrow(
      ModelSpec spec, int64_t version, const EngineOptions& options,
      double read_seconds);
  std::unique_ptr<Impl> impl_;
};

}  // namespace nnserve::engine

#endif  // NNSERVE_ENGINE_MODEL_H_
