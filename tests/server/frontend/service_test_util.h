// Shared helpers for the in-process frontend tests
// (inference_service_test.cc): building a random [rows, cols] input tensor
// in either encoding, and reading a tensor's floats back.
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
#include "tests/util/model_builder.h"

namespace nnserve::testing {

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
