// Shared helpers for the in-process server tests (tests/server/
// batcher_test.cc, inference_service_test.cc): writing and loading a model
// repository into a ModelManager, building a random [rows, cols] input
// tensor in either encoding, and reading a tensor's floats back.
//
// Header-only, like integration_fixture.h (which serves the tests that run
// the real binary). Nothing here keeps state; each function works on what
// the calling test owns.
#ifndef NNSERVE_TESTS_SERVER_SERVICE_TEST_UTIL_H_
#define NNSERVE_TESTS_SERVER_SERVICE_TEST_UTIL_H_

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <memory>
#include <vector>

#include "engine/model.h"
#include "gtest/gtest.h"
#include "nnserve/v1/inference.pb.h"
#include "server/observability/metrics.h"
#include "server/lifecycle/model_manager.h"
#include "tests/util/model_builder.h"

namespace nnserve::testing {

// Writes `model` as version 1 (safetensors, f32) into `repository`, then
// makes `*manager` a ModelManager over it with every model loaded. Fails
// the test (fatally: wrap the call in ASSERT_NO_FATAL_FAILURE) when either
// step fails.
inline void WriteAndLoadModel(const std::filesystem::path& repository,
                              const RandomModel& model,
                              server::ServerMetrics* metrics,
                              std::unique_ptr<server::ModelManager>* manager) {
  WriteModelDir(repository, model, 1, FileFormat::kSafetensors,
                engine::DType::kF32);
  auto created = server::ModelManager::Create(repository, metrics, false);
  ASSERT_TRUE(created.ok()) << created.status();
  *manager = *std::move(created);
  ASSERT_TRUE((*manager)->LoadAll(engine::EngineOptions{}).ok());
}

// Fills `tensor` with shape [rows, cols] and random values in [-2, 2]
// (RandomValues with `seed`), as raw bytes when `raw`, else as values.
inline void FillRandomInput(v1::Tensor* tensor, int64_t rows, int64_t cols,
                            bool raw, uint32_t seed) {
  const std::vector<float> x =
      RandomValues(static_cast<size_t>(rows * cols), 2.0f, seed);
  tensor->add_shape(rows);
  tensor->add_shape(cols);
  if (raw) {
    tensor->set_raw(x.data(), x.size() * sizeof(float));
  } else {
    tensor->mutable_values()->Add(x.begin(), x.end());
  }
}

// The floats of `tensor`, from its raw bytes when it has any, else from its
// values.
inline std::vector<float> TensorFloats(const v1::Tensor& tensor) {
  if (!tensor.raw().empty()) {
    std::vector<float> v(tensor.raw().size() / sizeof(float));
    std::memcpy(v.data(), tensor.raw().data(), v.size() * sizeof(float));
    return v;
  }
  return {tensor.values().begin(), tensor.values().end()};
}

}  // namespace nnserve::testing

#endif  // NNSERVE_TESTS_SERVER_SERVICE_TEST_UTIL_H_
