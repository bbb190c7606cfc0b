// Model: oneDNN execution of a ModelSpec (see model.h).
//
// Forward splits the rows into chunks of planned sizes (NextChunkRows) and
// runs each through its BatchPlan (batch_plan.h; the per-layer hot path is
// in batch_plan_run.cc): per chunk one atomic load finds the plan, then the
// plan runs on the thread's Workspace.
#include "engine/model.h"

#include <omp.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cmath>
#include <new>
#include <string_view>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "common/exceptions.h"
#include "common/str_util.h"
#include "engine/batch_plan.h"
#include "engine/model_stats.h"
#include "engine/probe.h"
#include "engine/quantize.h"
#include "engine/workspace.h"
#include "oneapi/dnnl/dnnl.hpp"

namespace nnserve::engine {
namespace {

// A oneDNN error as a status: its out-of-memory status is an allocation
// failure like std::bad_alloc (RESOURCE_EXHAUSTED), the rest INTERNAL.
absl::Status StatusFromDnnlError(const dnnl::error& e, std::string_view what) {
  if (e.status == dnnl_out_of_memory) {
    return StatusFromException(std::bad_alloc(), what);
  }
  return absl::InternalError(absl::StrCat(Sv(what), " failed: ", e.what()));
}

// Row counts with their own plan: every count up to kExactRows, then
// multiples of kExactRows up to kMaxChunkRows (79 plans at most). A forward
// of any other size runs as at most two chunks of planned sizes (e.g. 300 =
// 256 + 44), so the set of plans — and the memory they hold — stays bounded
// however varied the batch sizes are, and no steady-state call builds one.
constexpr int64_t kExactRows = 64;
constexpr int64_t kMaxChunkRows = 1024;

// The rows of the next chunk when `remaining` rows are left.
int64_t NextChunkRows(int64_t remaining) {
  if (remaining <= kExactRows) return remaining;
  const int64_t rows = std::min(remaining, kMaxChunkRows);
  return rows - rows % kExactRows;
}

using Clock = std::chrono::steady_clock;

// Replaces subnormal values (|x| < 2^-126) by zero of the same sign. x86
// handles subnormal operands through microcode assists: with the 27
// subnormal weights of models/digits a batch-64 forward took 4x longer. Their
// contribution to any output is below f32 resolution of a normal result.
void FlushSubnormals(std::vector<float>& values) {
  for (float& v : values) {
    if (std::fpclassify(v) == FP_SUBNORMAL) v = std::copysign(0.0f, v);
  }
}

// Sets the calling thread's OpenMP thread count (a per-thread ICV) and
// restores the previous value on destruction.
class ScopedOmpThreads {
 public:
  explicit ScopedOmpThreads(int n) : previous_(omp_get_max_threads()) {
    if (previous_ != n) omp_set_num_threads(n);
  }
  ~ScopedOmpThreads() {
    if (omp_get_max_threads() != previous_) omp_set_num_threads(previous_);
  }

 private:
  int previous_;
};

// The layers of `spec` as plan inputs in `precision`: subnormals flushed,
// INT8 weights quantized per channel.
std::vector<LayerWeights> MakeLayerWeights(std::vector<LayerSpec>& specs,
                                           Precision precision) {
  std::vector<LayerWeights> layers;
  for (size_t i = 0; i < specs.size(); ++i) {
    LayerSpec& ls = specs[i];
    LayerWeights lw;
    lw.input_size = ls.input_size;
    lw.units = ls.units;
    lw.activation = ls.activation;
    lw.alpha = ls.alpha;
    lw.plain = std::move(ls.weight);
    lw.bias_values = std::move(ls.bias);
    FlushSubnormals(lw.plain);
    FlushSubnormals(lw.bias_values);
    if (precision == Precision::kInt8) {
      lw.quantized = QuantizePerChannel(lw.plain, lw.units, lw.input_size);
      lw.plain = {};
      const Activation previous =
          i > 0 ? specs[i - 1].activation : Activation::kIdentity;
      lw.input_non_negative = previous == Activation::kRelu ||
                              previous == Activation::kSigmoid ||
                              previous == Activation::kSoftmax;
    }
    layers.push_back(std::move(lw));
  }
  return layers;
}

// What `options` lets this CPU run natively.
PrecisionSupport EffectiveSupport(const EngineOptions& options) {
  PrecisionSupport support = DetectedPrecisionSupport();
  if (options.cpu_support.has_value()) {
    support.bf16 = support.bf16 && options.cpu_support->bf16;
    support.int8 = support.int8 && options.cpu_support->int8;
    if (!options.cpu_support->isa.empty()) {
      support.isa = options.cpu_support->isa;
    }
  }
  return support;
}

}  // namespace

class Model::Impl {
 public:
  ModelInfo info;
  int threads = 1;
  Precision precision = Precision::kFp32;  // Effective.
  std::vector<std::string> layer_names;

  // Plans by row count; entries are written once under build_mu and never
  // removed while the model lives.
  std::array<std::atomic<const BatchPlan*>, kMaxChunkRows + 1> plans{};

  absl::Mutex build_mu;
  std::vector<LayerWeights> layers ABSL_GUARDED_BY(build_mu);
  std::vector<std::unique_ptr<BatchPlan>> owned ABSL_GUARDED_BY(build_mu);

  // The layers of `specs` (moved from) in `precision`, with the plans of
  // the chunk sizes in `prewarm` built (at least one: the first plan fixes
  // the stored weight layout). Uses the calling thread's OpenMP setting.
  // Throws dnnl::error.
  static std::unique_ptr<Impl> Build(std::vector<LayerSpec>& specs,
                                     Precision precision, int threads,
                                     const std::vector<int64_t>& prewarm) {
    auto impl = std::make_unique<Impl>();
    impl->threads = threads;
    impl->precision = precision;
    for (const LayerSpec& ls : specs) impl->layer_names.push_back(ls.name);
    {
      absl::MutexLock lock(&impl->build_mu);
      impl->layers = MakeLayerWeights(specs, precision);
      for (LayerWeights& lw : impl->layers) {
        if (!lw.bias_values.empty()) {
          lw.bias = dnnl::memory({{1, lw.units},
                                  dnnl::memory::data_type::f32,
                                  dnnl::memory::format_tag::ab},
                                 CpuEngine(), lw.bias_values.data());
        }
      }
    }
    for (int64_t rows : prewarm) {
      impl->GetPlan(rows);
      // FP32/BF16 weights now live in their reordered copies.
      absl::MutexLock lock(&impl->build_mu);
      for (LayerWeights& lw : impl->layers) lw.plain = {};
    }
    return impl;
  }

  // Returns the cached plan for `rows` (a count NextChunkRows produces),
  // building it on first use.
  const BatchPlan* GetPlan(int64_t rows) {
    const BatchPlan* plan = plans[rows].load(std::memory_order_acquire);
    if (plan != nullptr) return plan;
    absl::MutexLock lock(&build_mu);
    plan = plans[rows].load(std::memory_order_acquire);
    if (plan != nullptr) return plan;
    std::unique_ptr<BatchPlan> built =
        BatchPlan::Build(rows, precision, layers, CpuEngine());
    plan = built.get();
    owned.push_back(std::move(built));
    plans[rows].store(plan, std::memory_order_release);
    return plan;
  }

  // The matmul implementation of each layer in the first plan built.
  std::vector<std::string> Kernels() {
    absl::MutexLock lock(&build_mu);
    std::vector<std::string> kernels;
    for (const LayerStep& step : owned.front()->steps()) {
      kernels.push_back(step.kernel);
    }
    return kernels;
  }

  // Runs `rows` rows (sizes checked by the caller) as planned chunks.
  // Throws dnnl::error and std::bad_alloc.
  absl::Status Run(const float* input, int64_t rows, float* output,
                   std::span<double> layer_seconds, LayerCapture* capture) {
    // The OpenMP thread count is a per-thread setting; primitives were
    // built for this count.
    if (omp_get_max_threads() != threads) omp_set_num_threads(threads);
    Workspace& ws = ThreadWorkspace();
    const int64_t in = info.input_size;
    const int64_t out = info.output_size;
    for (int64_t first = 0, chunk; first < rows; first += chunk) {
      chunk = NextChunkRows(rows - first);
      if (capture != nullptr) capture->first_row = first;
      absl::Status status =
          GetPlan(chunk)->Run(ws, input + first * in, output + first * out,
                              layer_seconds, layer_names, capture);
      if (!status.ok()) return status;
    }
    return absl::OkStatus();
  }

  // Every layer's output for `probe` (f32), the model's output included.
  absl::StatusOr<std::vector<std::vector<float>>> Capture(
      const ProbeBatch& probe, const std::vector<LayerSpec>& specs) {
    std::vector<std::vector<float>> outputs;
    LayerCapture capture;
    for (const LayerSpec& ls : specs) {
      outputs.emplace_back(static_cast<size_t>(probe.rows * ls.units));
      capture.outputs.push_back(outputs.back());
    }
    absl::Status status = Run(probe.values.data(), probe.rows,
                              outputs.back().data(), {}, &capture);
    if (!status.ok()) return status;
    return outputs;
  }

  // Runs spec.probe through an FP32 plan of the same weights (`fp32_specs`,
  // a copy of spec.layers, consumed) and through this model, fills
  // info.precision's deviations and probe fields, then applies
  // spec.max_precision_deviation. Throws dnnl::error.
  absl::Status Probe(const ModelSpec& spec, int64_t version,
                     std::vector<LayerSpec> fp32_specs);
};

absl::Status Model::Impl::Probe(const ModelSpec& spec, int64_t version,
                                std::vector<LayerSpec> fp32_specs) {
  const ProbeBatch& probe = spec.probe;
  PrecisionReport& report = info.precision;
  std::unique_ptr<Impl> fp32 =
      Build(fp32_specs, Precision::kFp32, threads, {NextChunkRows(probe.rows)});
  fp32->info.input_size = info.input_size;
  fp32->info.output_size = info.output_size;
  absl::StatusOr<std::vector<std::vector<float>>> expected =
      fp32->Capture(probe, spec.layers);
  if (!expected.ok()) return expected.status();
  fp32.reset();
  absl::StatusOr<std::vector<std::vector<float>>> actual =
      Capture(probe, spec.layers);
  if (!actual.ok()) return actual.status();
  report.probe_source = probe.source;
  report.probe_rows = probe.rows;
  for (size_t i = 0; i < report.layers.size(); ++i) {
    LayerPrecision& layer = report.layers[i];
    MeasureDeviation((*actual)[i], (*expected)[i], layer);
    const float limit = spec.max_precision_deviation;
    if (limit > 0 && !(layer.relative_l2_deviation <= limit)) {
      return absl::FailedPreconditionError(absl::StrFormat(
          "model '%s' version %d in %s: layer '%s' (%d of %d) deviates from "
          "FP32 by relative L2 %.4g (max abs %.4g) on the probe batch (%s, "
          "%d rows), above max_precision_deviation %g; expected at most that "
          "(raise the limit or choose a higher precision)",
          spec.name, version, PrecisionName(report.effective), layer.name,
          i + 1, report.layers.size(), layer.relative_l2_deviation,
          layer.max_abs_deviation, probe.source, probe.rows, limit));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::shared_ptr<const Model>> Model::Create(
    ModelSpec spec, int64_t version, const EngineOptions& options,
    double read_seconds) {
  const std::string what =
      absl::StrCat("loading model '", spec.name, "' version ", version);
  try {
    return CreateOrThrow(std::move(spec), version, options, read_seconds);
  } catch (const dnnl::error& e) {
    return StatusFromDnnlError(e, what);
  } catch (const std::exception& e) {
    return StatusFromException(e, what);
  } catch (...) {
    return StatusFromUnknownException(what);
  }
}

absl::StatusOr<std::shared_ptr<const Model>> Model::CreateOrThrow(
    ModelSpec spec, int64_t version, const EngineOptions& options,
    double read_seconds) {
  const Clock::time_point start = Clock::now();
  if (spec.layers.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("model '", spec.name, "' has no layers"));
  }
  if (options.intra_op_threads < 1 || options.intra_op_threads > 1024) {
    return absl::InvalidArgumentError(absl::StrCat("intra_op_threads is ",
                                                   options.intra_op_threads,
                                                   ", expected 1..1024"));
  }
  std::vector<int64_t> prewarm;
  for (int64_t rows : options.prewarm_batch_sizes) {
    if (rows < 1) {
      return absl::InvalidArgumentError(absl::StrCat(
          "prewarm batch size ", rows, " is invalid, expected >= 1"));
    }
    // The plans every chunk of a `rows`-row forward uses.
    for (int64_t left = rows; left > 0; left -= prewarm.back()) {
      prewarm.push_back(NextChunkRows(left));
    }
  }
  // The first plan fixes the stored weight layout; build one even if no
  // batch size was asked for.
  if (prewarm.empty()) prewarm.push_back(1);

  ModelInfo info = DescribeModel(spec, version);
  PrecisionReport& report = info.precision;
  const PrecisionSupport support = EffectiveSupport(options);
  report.requested = options.precision_override.value_or(spec.precision);
  report.effective =
      support.Supports(report.requested) ? report.requested : Precision::kFp32;
  report.isa = support.isa;
  report.max_precision_deviation = spec.max_precision_deviation;
  if (report.effective != report.requested) {
    const absl::string_view name = Sv(PrecisionName(report.requested));
    report.fallback_reason = absl::StrCat(
        name, " requested, but oneDNN has no native ", name,
        " matmul on this CPU (effective ISA ", report.isa, "); running FP32");
  }
  for (const LayerSpec& ls : spec.layers) {
    LayerPrecision layer;
    layer.name = ls.name;
    report.layers.push_back(std::move(layer));
  }
  const bool probe = report.effective != Precision::kFp32;
  if (probe && spec.probe.empty()) spec.probe = GenerateProbeBatch(spec);

  std::unique_ptr<Impl> impl;
  try {
    ScopedOmpThreads omp_threads(options.intra_op_threads);
    // The FP32 probe plan needs its own copy of the weights; Build moves
    // them out of spec.layers (names and sizes stay).
    std::vector<LayerSpec> fp32_specs;
    if (probe) fp32_specs = spec.layers;
    impl = Impl::Build(spec.layers, report.effective, options.intra_op_threads,
                       prewarm);
    impl->info = std::move(info);
    const std::vector<std::string> kernels = impl->Kernels();
    for (size_t i = 0; i < kernels.size(); ++i) {
      impl->info.precision.layers[i].kernel = kernels[i];
    }
    if (probe) {
      absl::Status status = impl->Probe(spec, version, std::move(fp32_specs));
      if (!status.ok()) return status;
    }
  } catch (const dnnl::error& e) {
    return StatusFromDnnlError(
        e, absl::StrCat("oneDNN setup of model '", spec.name, "'"));
  }
  auto model = std::shared_ptr<Model>(new Model(std::move(impl)));
  // Warm-up: one row of zeros through every layer, so the first request
  // does not pay for lazily initialised state and a model that cannot run
  // is never handed out.
  std::vector<float> input(static_cast<size_t>(model->input_size()), 0.0f);
  std::vector<float> output(static_cast<size_t>(model->output_size()));
  if (absl::Status warm = model->Forward(input, 1, output); !warm.ok()) {
    return absl::Status(
        warm.code(),
        absl::StrCat("warm-up forward pass of model '", spec.name, "' version ",
                     version, " failed: ", warm.message()));
  }
  model->impl_->info.load_seconds =
      read_seconds +
      std::chrono::duration<double>(Clock::now() - start).count();
  return model;
}

Model::Model(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Model::~Model() = default;

const ModelInfo& Model::info() const { return impl_->info; }

absl::Status Model::Forward(std::span<const float> input, int64_t rows,
                            std::span<float> output,
                            std::span<double> layer_seconds) const {
  return ForwardWithLayers(input, rows, output, {}, layer_seconds);
}

absl::Status Model::ForwardWithLayers(std::span<const float> input,
                                      int64_t rows, std::span<float> output,
                                      std::span<const LayerOutput> layers,
                                      std::span<double> layer_seconds) const {
  const int64_t in = impl_->info.input_size;
  const int64_t out = impl_->info.output_size;
  if (rows < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("rows is ", rows, ", expected >= 1"));
  }
  if (static_cast<int64_t>(input.size()) != rows * in) {
    return absl::InvalidArgumentError(absl::StrCat(
        "input has ", input.size(), " values, expected rows * input_size = ",
        rows, " * ", in, " = ", rows * in));
  }
  if (static_cast<int64_t>(output.size()) != rows * out) {
    return absl::InvalidArgumentError(
        absl::StrCat("output has room for ", output.size(),
                     " values, expected rows * output_size = ", rows, " * ",
                     out, " = ", rows * out));
  }
  if (!layer_seconds.empty() && layer_seconds.size() != num_layers()) {
    return absl::InvalidArgumentError(
        absl::StrCat("layer_seconds has ", layer_seconds.size(),
                     " entries, expected 0 or ", num_layers()));
  }
  LayerCapture capture;
  if (!layers.empty()) {
    capture.outputs.resize(num_layers());
    for (const LayerOutput& wanted : layers) {
      if (wanted.layer >= num_layers()) {
        return absl::InvalidArgumentError(
            absl::StrCat("layer output for layer index ", wanted.layer,
                         ", expected an index below ", num_layers()));
      }
      const int64_t units = impl_->info.layers[wanted.layer].output_size;
      if (static_cast<int64_t>(wanted.values.size()) != rows * units) {
        return absl::InvalidArgumentError(absl::StrCat(
            "layer output for layer '", impl_->info.layers[wanted.layer].name,
            "' has room for ", wanted.values.size(),
            " values, expected rows * units = ", rows, " * ", units, " = ",
            rows * units));
      }
      if (!capture.outputs[wanted.layer].empty()) {
        return absl::InvalidArgumentError(
            absl::StrCat("layer '", impl_->info.layers[wanted.layer].name,
                         "' is asked for twice, expected at most once"));
      }
      capture.outputs[wanted.layer] = wanted.values;
    }
  }
  for (double& s : layer_seconds) s = 0;
  try {
    return impl_->Run(input.data(), rows, output.data(), layer_seconds,
                      layers.empty() ? nullptr : &capture);
  } catch (const dnnl::error& e) {
    return StatusFromDnnlError(
        e, absl::StrCat("oneDNN forward of model '", impl_->info.name,
                        "' with ", rows, " rows"));
  } catch (const std::exception& e) {
    return StatusFromException(
        e, absl::StrCat("running model '", impl_->info.name, "' with ", rows,
                        " rows"));
  }
}

}  // namespace nnserve::engine
