// Helpers shared by the BF16/INT8 engine tests (precision_test.cc,
// precision_config_test.cc): the accuracy measure and tolerances, model
// creation with a precision override, and skipping on CPUs without native
// support. Header-only; stateless.
#ifndef NNSERVE_TESTS_ENGINE_PRECISION_TEST_UTIL_H_
#define NNSERVE_TESTS_ENGINE_PRECISION_TEST_UTIL_H_

#include <cmath>
#include <memory>
#include <span>
#include <string>
#include <utility>

#include "engine/model.h"
#include "engine/precision.h"
#include "gtest/gtest.h"
#include "tests/util/model_builder.h"

namespace nnserve::engine {

// Issue 12's accuracy targets: relative L2 of the output vs the float64
// reference.
inline double Tolerance(Precision precision) {
  return precision == Precision::kBf16 ? 2e-2 : 5e-2;
}

inline double RelativeL2(std::span<const float> actual,
                         std::span<const double> expected) {
  double diff = 0, ref = 0;
  for (size_t i = 0; i < expected.size(); ++i) {
    if (!std::isfinite(actual[i])) return INFINITY;
    diff += (actual[i] - expected[i]) * (actual[i] - expected[i]);
    ref += expected[i] * expected[i];
  }
  return std::sqrt(diff / ref);
}

inline absl::StatusOr<std::shared_ptr<const Model>> Create(
    const ::nnserve::testing::RandomModel& m, EngineOptions options) {
  absl::StatusOr<ModelSpec> spec = BuildModelSpec(m.config, m.tensors, "mem");
  if (!spec.ok()) return spec.status();
  return Model::Create(*std::move(spec), 1, options);
}

inline std::shared_ptr<const Model> CreateOrFail(
    const ::nnserve::testing::RandomModel& m, EngineOptions options) {
  absl::StatusOr<std::shared_ptr<const Model>> model = Create(m, options);
  EXPECT_TRUE(model.ok()) << model.status();
  return model.ok() ? *model : nullptr;
}

inline EngineOptions WithPrecision(Precision precision) {
  EngineOptions options;
  options.precision_override = precision;
  options.prewarm_batch_sizes = {1, 64};
  return options;
}

// Whether this CPU runs `precision` natively; tests that need it skip
// otherwise: `if (!Native(p)) GTEST_SKIP() << NotNative(p);`.
inline bool Native(Precision precision) {
  return DetectedPrecisionSupport().Supports(precision);
}
inline std::string NotNative(Precision precision) {
  return std::string(PrecisionName(precision)) +
         " is not native on this CPU (oneDNN ISA " +
         DetectedPrecisionSupport().isa + ")";
}

// The mlp-784 shape: 784 -> 512 RELU -> 512 RELU -> 10 SOFTMAX.
inline ::nnserve::testing::RandomModel Mlp784() {
  return ::nnserve::testing::BuildRandomModel("mlp", 784,
                                              {{512, Activation::kRelu},
                                               {512, Activation::kRelu},
                                               {10, Activation::kSoftmax}},
                                              WeightLayout::kOutIn, 5);
}

}  // namespace nnserve::engine

#endif  // NNSERVE_TESTS_ENGINE_PRECISION_TEST_UTIL_H_
