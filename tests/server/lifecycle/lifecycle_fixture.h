// Test fixture for ModelLifecycle unit tests: a LiveRepository (changed by
// rename, as users are told to), the real Scheduler, ModelRegistry and
// ServerMetrics, and helpers that wait for conditions (generous timeouts;
// timing never decides a result), call LoadModel/UnloadModel and check
// which weights a served version computes with. Not thread-safe: use from
// the test body.
#ifndef NNSERVE_TESTS_SERVER_LIFECYCLE_LIFECYCLE_FIXTURE_H_
#define NNSERVE_TESTS_SERVER_LIFECYCLE_LIFECYCLE_FIXTURE_H_

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/notification.h"
#include "gtest/gtest.h"
#include "server/lifecycle/model_lifecycle.h"
#include "server/lifecycle/model_registry.h"
#include "server/observability/metrics.h"
#include "server/scheduling/scheduler.h"
#include "tests/util/live_repository.h"
#include "tests/util/model_builder.h"
#include "tests/util/reference.h"
#include "tests/util/tensor_files.h"

namespace nnserve::server {

class LifecycleTest : public ::testing::Test {
 protected:
  // A 4 -> 3 -> 2 model named `name` with weights drawn from `seed`.
  static testing::RandomModel Model(const std::string& name, uint32_t seed) {
    return testing::BuildRandomModel(
        name, 4,
        {{3, engine::Activation::kRelu}, {2, engine::Activation::kSoftmax}},
        engine::WeightLayout::kOutIn, seed);
  }

  // A lifecycle over the repository. Mode poll rescans only on Rescan()
  // (the interval is an hour), so tests decide when scans happen.
  std::unique_ptr<ModelLifecycle> Make(
      ModelControlMode mode,
      const std::function<void(ModelLifecycle::Options&)>& tweak = {}) {
    ModelLifecycle::Options options;
    options.repository = repo_.path();
    options.mode = mode;
    options.poll_seconds = 3600;
    if (tweak) tweak(options);
    return std::make_unique<ModelLifecycle>(options, &registry_, &scheduler_,
                                            &metrics_);
  }

  // Polls `condition` every few milliseconds for up to a minute.
  static bool WaitFor(const std::function<bool()>& condition) {
    const auto deadline =
        std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (std::chrono::steady_clock::now() < deadline) {
      if (condition()) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return condition();
  }

  // The outcome of LoadModel / UnloadModel, waited for.
  static absl::Status Call(
      ModelLifecycle& lifecycle,
      void (ModelLifecycle::*op)(std::string,
                                 absl::AnyInvocable<void(absl::Status) &&>),
      const std::string& model) {
    absl::Notification done;
    absl::Status result;
    (lifecycle.*op)(model, [&](absl::Status status) {
      result = std::move(status);
      done.Notify();
    });
    done.WaitForNotification();
    return result;
  }

  // The served version's number, or 0 if the lookup fails.
  int64_t ServingVersion(const std::string& model, int64_t version = 0) {
    auto found = registry_.Find(model, version);
    return found.ok() ? (*found)->version : 0;
  }

  // The listed state of (model, version); STATE_UNSPECIFIED if not listed.
  v1::ModelVersionStatus Listed(const std::string& model, int64_t version) {
    const v1::ListModelsResponse list = registry_.ListModels();
    for (const v1::ModelStatus& m : list.models()) {
      if (m.name() != model) continue;
      for (const v1::ModelVersionStatus& v : m.versions()) {
        if (v.version() == version) return v;
      }
    }
    return v1::ModelVersionStatus();
  }

  // The value of the series `name` with exactly `labels`, or -1.
  double Metric(const std::string& name,
                const std::map<std::string, std::string>& labels) {
    for (const auto& family : metrics_.registry()->Collect()) {
      if (family.name != name) continue;
      for (const auto& metric : family.metric) {
        std::map<std::string, std::string> got;
        for (const auto& l : metric.label) got[l.name] = l.value;
        if (got != labels) continue;
        if (family.type == prometheus::MetricType::Counter) {
          return metric.counter.value;
        }
        if (family.type == prometheus::MetricType::Histogram) {
          return static_cast<double>(metric.histogram.sample_count);
        }
        return metric.gauge.value;
      }
    }
    return -1;
  }
  double Loads(const std::string& model, const std::string& result) {
    return Metric("nnserve_model_loads_total",
                  {{"model", model}, {"result", result}});
  }
  double Loaded(const std::string& model, int64_t version) {
    return Metric("nnserve_model_loaded",
                  {{"model", model}, {"version", std::to_string(version)}});
  }

  // True if `served` computes what `expected`'s weights compute, through
  // its scheduler queue (the path requests take).
  bool ComputesLike(const std::shared_ptr<const ServedVersion>& served,
                    const testing::RandomModel& expected) {
    const int64_t rows = 3;
    const std::vector<float> input = testing::RandomValues(12, 1.0f, 77);
    std::vector<float> output(6);
    absl::Notification done;
    absl::Status result;
    InferenceCall call;
    call.input = input;
    call.rows = rows;
    call.output = output;
    call.done = [&](absl::Status status) {
      result = std::move(status);
      done.Notify();
    };
    absl::Status submitted = scheduler_.Submit(served->queue, std::move(call));
    if (!submitted.ok()) {
      ADD_FAILURE() << submitted;
      return false;
    }
    done.WaitForNotification();
    if (!result.ok()) {
      ADD_FAILURE() << result;
      return false;
    }
    return testing::MaxRowRelativeError(
               output,
               testing::ReferenceForward(expected.config, expected.tensors,
                                         input, rows),
               rows) <= 1e-5;
  }

  // A safetensors file cut in the middle of its data.
  static std::map<std::string, std::string> TruncatedWeights(
      const testing::RandomModel& model);

  testing::LiveRepository repo_{"lifecycle_test"};
  ServerMetrics metrics_{"test"};
  Scheduler scheduler_{Scheduler::Options{.threads = 1}};
  ModelRegistry registry_{&metrics_};
};

inline std::map<std::string, std::string> LifecycleTest::TruncatedWeights(
    const testing::RandomModel& model) {
  std::string bytes =
      testing::SafetensorsBytes(model.tensors, formats::DType::kF32);
  bytes.resize(bytes.size() / 2);
  return {{testing::kWeightFile, bytes}};
}

}  // namespace nnserve::server

#endif  // NNSERVE_TESTS_SERVER_LIFECYCLE_LIFECYCLE_FIXTURE_H_
