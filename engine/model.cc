// Model: oneDNN execution of a ModelSpec (see model.h).
//
// Hot path of Forward (steady state, no heap allocation in this file; oneDNN
// 2.6's dnnl_primitive_execute still builds its own argument map inside, ~7
// small allocations per primitive run): per chunk (see NextChunkRows), one
// atomic load to find the BatchPlan for the chunk's row count, a mutex-guarded
// pop of a MemorySet, then per layer set_data_handle + dnnl_primitive_execute
// (C API, stack-allocated argument array) on a thread_local stream, with
// activations in two thread_local buffers that grow on demand.
#include "engine/model.h"

#include <omp.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <mutex>
#include <utility>

#include "absl/strings/str_cat.h"
#include "engine/batch_plan.h"
#include "engine/model_stats.h"
#include "engine/str_util.h"
#include "oneapi/dnnl/dnnl.hpp"
#include "oneapi/dnnl/dnnl_debug.h"

namespace nnserve::engine {
namespace {

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

// One CPU engine for every model; deliberately never destroyed so that
// thread_local streams and late model destructions never outlive it.
const dnnl::engine& CpuEngine() {
  static const dnnl::engine* engine =
      new dnnl::engine(dnnl::engine::kind::cpu, 0);
  return *engine;
}

// A 64-byte aligned float buffer that only grows.
class AlignedBuffer {
 public:
  AlignedBuffer() = default;
  AlignedBuffer(const AlignedBuffer&) = delete;
  AlignedBuffer& operator=(const AlignedBuffer&) = delete;
  ~AlignedBuffer() { std::free(data_); }

  // Ensures room for `bytes` bytes; contents are not preserved.
  void* Reserve(size_t bytes) {
    if (bytes > capacity_) {
      std::free(data_);
      const size_t rounded = (bytes + 63) / 64 * 64;
      data_ = std::aligned_alloc(64, rounded);
      if (data_ == nullptr) throw std::bad_alloc();
      capacity_ = rounded;
    }
    return data_;
  }

 private:
  void* data_ = nullptr;
  size_t capacity_ = 0;
};

// Per-thread scratch shared by every model this thread runs.
struct Workspace {
  AlignedBuffer activations[2];
  AlignedBuffer scratch;
  dnnl::stream stream;
};

Workspace& ThreadWorkspace() {
  thread_local Workspace workspace;
  if (!workspace.stream) workspace.stream = dnnl::stream(CpuEngine());
  return workspace;
}

absl::Status ExecuteError(dnnl_status_t status, std::string_view what,
                          std::string_view layer) {
  return absl::InternalError(
      absl::StrCat("oneDNN ", Sv(what), " of layer '", Sv(layer),
                   "' failed: ", dnnl_status2str(status)));
}

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

}  // namespace

class Model::Impl {
 public:
  ModelInfo info;
  int threads = 1;
  int64_t max_hidden = 0;  // Widest non-final layer (activation buffers).
  std::vector<std::string> layer_names;

  // Plans by row count; entries are written once under build_mu and never
  // removed while the model lives.
  std::array<std::atomic<const BatchPlan*>, kMaxChunkRows + 1> plans{};

  std::mutex build_mu;
  std::vector<LayerWeights> layers;               // Guarded by build_mu.
  std::vector<std::unique_ptr<BatchPlan>> owned;  // Guarded by build_mu.

  // Returns the cached plan for `rows` (a count NextChunkRows produces),
  // building it on first use.
  const BatchPlan* GetPlan(int64_t rows) {
    const BatchPlan* plan = plans[rows].load(std::memory_order_acquire);
    if (plan != nullptr) return plan;
    std::lock_guard<std::mutex> lock(build_mu);
    plan = plans[rows].load(std::memory_order_acquire);
    if (plan != nullptr) return plan;
    std::unique_ptr<BatchPlan> built =
        BatchPlan::Build(rows, layers, CpuEngine());
    plan = built.get();
    owned.push_back(std::move(built));
    plans[rows].store(plan, std::memory_order_release);
    return plan;
  }

  absl::Status RunChunk(Workspace& ws, const float* input, int64_t rows,
                        float* output, std::span<double> layer_seconds);
};

absl::Status Model::Impl::RunChunk(Workspace& ws, const float* input,
                                   int64_t rows, float* output,
                                   std::span<double> layer_seconds) {
  const BatchPlan* plan = GetPlan(rows);
  const size_t act_bytes = static_cast<size_t>(rows * max_hidden) * 4;
  float* buffers[2] = {
      static_cast<float*>(ws.activations[0].Reserve(act_bytes)),
      static_cast<float*>(ws.activations[1].Reserve(act_bytes))};
  void* scratch = ws.scratch.Reserve(plan->scratch_bytes());

  MemorySet* set = plan->Acquire();
  struct Releaser {
    const BatchPlan* plan;
    MemorySet* set;
    ~Releaser() { plan->Release(set); }
  } releaser{plan, set};

  const bool timed = !layer_seconds.empty();
  const std::vector<LayerStep>& steps = plan->steps();
  const float* src = input;
  for (size_t i = 0; i < steps.size(); ++i) {
    const LayerStep& step = steps[i];
    const Clock::time_point start = timed ? Clock::now() : Clock::time_point();
    float* dst = i + 1 == steps.size() ? output : buffers[i % 2];
    set->src[i].set_data_handle(const_cast<float*>(src));
    set->dst[i].set_data_handle(dst);

    std::array<dnnl_exec_arg_t, 5> args;
    int n = 0;
    args[n++] = {DNNL_ARG_SRC, set->src[i].get()};
    args[n++] = {DNNL_ARG_WEIGHTS, step.weights.get()};
    if (step.bias) args[n++] = {DNNL_ARG_BIAS, step.bias.get()};
    args[n++] = {DNNL_ARG_DST, set->dst[i].get()};
    if (set->scratch[i]) {
      set->scratch[i].set_data_handle(scratch);
      args[n++] = {DNNL_ARG_SCRATCHPAD, set->scratch[i].get()};
    }
    dnnl_status_t status = dnnl_primitive_execute(
        step.matmul.get(), ws.stream.get(), n, args.data());
    if (status != dnnl_success) {
      return ExecuteError(status, "matmul", layer_names[i]);
    }
    if (step.softmax) {
      n = 0;
      args[n++] = {DNNL_ARG_SRC, set->dst[i].get()};
      args[n++] = {DNNL_ARG_DST, set->dst[i].get()};
      if (set->softmax_scratch[i]) {
        set->softmax_scratch[i].set_data_handle(scratch);
        args[n++] = {DNNL_ARG_SCRATCHPAD, set->softmax_scratch[i].get()};
      }
      status = dnnl_primitive_execute(step.softmax.get(), ws.stream.get(), n,
                                      args.data());
      if (status != dnnl_success) {
        return ExecuteError(status, "softmax", layer_names[i]);
      }
    }
    if (timed) {
      dnnl_stream_wait(ws.stream.get());
      layer_seconds[i] +=
          std::chrono::duration<double>(Clock::now() - start).count();
    }
    src = dst;
  }
  const dnnl_status_t status = dnnl_stream_wait(ws.stream.get());
  if (status != dnnl_success) {
    return ExecuteError(status, "stream wait", layer_names.back());
  }
  return absl::OkStatus();
}

absl::StatusOr<std::shared_ptr<const Model>> Model::Create(
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

  auto impl = std::make_unique<Impl>();
  impl->threads = options.intra_op_threads;
  impl->info = DescribeModel(spec, version);
  for (size_t i = 0; i < spec.layers.size(); ++i) {
    LayerSpec& ls = spec.layers[i];
    impl->layer_names.push_back(ls.name);
    if (i + 1 < spec.layers.size()) {
      impl->max_hidden = std::max(impl->max_hidden, ls.units);
    }
    LayerWeights lw;
    lw.input_size = ls.input_size;
    lw.units = ls.units;
    lw.activation = ls.activation;
    lw.alpha = ls.alpha;
    lw.plain = std::move(ls.weight);
    lw.bias_values = std::move(ls.bias);
    FlushSubnormals(lw.plain);
    FlushSubnormals(lw.bias_values);
    impl->layers.push_back(std::move(lw));
  }

  try {
    const dnnl::engine& engine = CpuEngine();
    for (LayerWeights& lw : impl->layers) {
      if (!lw.bias_values.empty()) {
        lw.bias = dnnl::memory({{1, lw.units},
                                dnnl::memory::data_type::f32,
                                dnnl::memory::format_tag::ab},
                               engine, lw.bias_values.data());
      }
    }
    ScopedOmpThreads omp_threads(impl->threads);
    for (int64_t rows : prewarm) {
      impl->GetPlan(rows);
      // Weights now live in their reordered copies.
      for (LayerWeights& lw : impl->layers) {
        lw.plain.clear();
        lw.plain.shrink_to_fit();
      }
    }
  } catch (const dnnl::error& e) {
    return absl::InternalError(absl::StrCat("oneDNN setup of model '",
                                            spec.name, "' failed: ", e.what()));
  }
  auto model = std::shared_ptr<Model>(new Model(std::move(impl)));
  // Warm-up: one row of zeros through every layer, so the first request
  // does not pay for lazily initialised state and a model that cannot run
  // is never handed out.
  std::vector<float> input(static_cast<size_t>(model->input_size()), 0.0f);
  std::vector<float> output(static_cast<size_t>(model->output_size()));
  if (absl::Status warm = model->Forward(input, 1, output); !warm.ok()) {
    return absl::Status(
        warm.code(), absl::StrCat("warm-up forward pass of model '", spec.name,
                                  "' version ", version,
                                  " failed: ", warm.message()));
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
  for (double& s : layer_seconds) s = 0;
  // The OpenMP thread count is a per-thread setting; primitives were built
  // for this count.
  if (omp_get_max_threads() != impl_->threads) {
    omp_set_num_threads(impl_->threads);
  }
  try {
    Workspace& ws = ThreadWorkspace();
    for (int64_t first = 0, chunk; first < rows; first += chunk) {
      chunk = NextChunkRows(rows - first);
      absl::Status status =
          impl_->RunChunk(ws, input.data() + first * in, chunk,
                          output.data() + first * out, layer_seconds);
      if (!status.ok()) return status;
    }
  } catch (const dnnl::error& e) {
    return absl::InternalError(absl::StrCat(
        "oneDNN forward of model '", impl_->info.name, "' failed: ", e.what()));
  } catch (const std::bad_alloc&) {
    return absl::ResourceExhaustedError(
        absl::StrCat("out of memory running model '", impl_->info.name,
                     "' with ", rows, " rows"));
  }
  return absl::OkStatus();
}

}  // namespace nnserve::engine
