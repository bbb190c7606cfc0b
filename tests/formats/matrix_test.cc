// Tests for formats/matrix.h: .npy bytes as a [rows, cols] matrix — ranks,
// dtypes, Fortran order, empty arrays, and headers whose shape product
// overflows.
#include "formats/matrix.h"

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "formats/npy.h"
#include "formats/tensor.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/util/tensor_files.h"

namespace nnserve::formats {
namespace {

using ::nnserve::testing::NpyBytes;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

// A version-1.0 file with the literal header dict `dict` and `data`.
std::string RawNpy(const std::string& dict, const std::string& data) {
  std::string header = dict;
  while ((10 + header.size() + 1) % 64 != 0) header += ' ';
  header += '\n';
  std::string out = "\x93NUMPY\x01";
  out += '\0';
  out += static_cast<char>(header.size() & 0xff);
  out += static_cast<char>(header.size() >> 8);
  return out + header + data;
}

TEST(NpyMatrixTest, TwoDimensionalIsRowsOneDimensionalIsOneRow) {
  auto m = ParseNpyMatrix(
      SerializeNpy({3, 2}, std::vector<float>{1, 2, 3, 4, 5, 6}), "x.npy");
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->rows, 3);
  EXPECT_EQ(m->cols, 2);
  EXPECT_THAT(m->values, ElementsAre(1, 2, 3, 4, 5, 6));
  auto row =
      ParseNpyMatrix(SerializeNpy({3}, std::vector<float>{1, 2, 3}), "x.npy");
  ASSERT_TRUE(row.ok()) << row.status();
  EXPECT_EQ(row->rows, 1);
  EXPECT_EQ(row->cols, 3);
}

TEST(NpyMatrixTest, EveryDTypeAndFortranOrder) {
  const Tensor t{{2, 3}, {1, 2, 3, 4, 5, 6}, DType::kF32};
  for (DType dtype : {DType::kF32, DType::kF64, DType::kF16}) {
    for (bool fortran : {false, true}) {
      auto m = ParseNpyMatrix(NpyBytes(t, dtype, 2, fortran), "x.npy");
      ASSERT_TRUE(m.ok()) << DTypeName(dtype) << " " << m.status();
      EXPECT_EQ(m->rows, 2);
      EXPECT_EQ(m->cols, 3);
      EXPECT_THAT(m->values, ElementsAre(1, 2, 3, 4, 5, 6));
    }
  }
}

TEST(NpyMatrixTest, OtherRanksAndEmptyArraysAreRefused) {
  const struct {
    std::vector<int64_t> shape;
    std::string message;
  } cases[] = {
      {{1, 1, 2}, "shape [1, 1, 2] (rank 3); expected [rows, features]"},
      {{}, "shape [] (rank 0)"},
      {{0, 4}, "shape [0, 4], which holds no values"},
      {{4, 0}, "shape [4, 0], which holds no values"},
      {{0}, "shape [0], which holds no values"},
  };
  for (const auto& c : cases) {
    int64_t count = 1;
    for (int64_t d : c.shape) count *= d;
    auto m = ParseNpyMatrix(
        SerializeNpy(c.shape, std::vector<float>(static_cast<size_t>(count))),
        "in.npy");
    ASSERT_FALSE(m.ok()) << c.message;
    EXPECT_EQ(m.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(m.status().message(), HasSubstr("in.npy: npy: array has "))
        << c.message;
    EXPECT_THAT(m.status().message(), HasSubstr(c.message));
  }
}

TEST(NpyMatrixTest, ShapeProductOverflowIsRefused) {
  for (const char* shape :
       {"(4294967296, 4294967296)", "(4611686018427387904, 4)",
        "(2305843009213693952, 2)",
        "(9223372036854775807, 9223372036854775807)"}) {
    auto m = ParseNpyMatrix(
        RawNpy(std::string("{'descr': '<f4', 'fortran_order': False, "
                           "'shape': ") +
                   shape + ", }",
               ""),
        "in.npy");
    ASSERT_FALSE(m.ok()) << shape;
    EXPECT_THAT(m.status().message(), HasSubstr("overflows 64 bits")) << shape;
  }
  // A huge shape that does not overflow is a truncated file, not an
  // allocation.
  auto huge = ParseNpyMatrix(
      RawNpy("{'descr': '<f4', 'fortran_order': False, 'shape': (1073741824, "
             "1024), }",
             std::string(8, '\0')),
      "in.npy");
  ASSERT_FALSE(huge.ok());
  EXPECT_THAT(huge.status().message(), HasSubstr("file truncated"));
}

TEST(NpyMatrixTest, NonFiniteValuesPassThrough) {
  auto m = ParseNpyMatrix(
      SerializeNpy(
          {2},
          std::vector<float>{std::numeric_limits<float>::quiet_NaN(), 1.0f}),
      "x.npy");
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_TRUE(std::isnan(m->values[0]));
}

TEST(NpyMatrixTest, LooksLikeNpyChecksTheMagic) {
  EXPECT_TRUE(LooksLikeNpy(SerializeNpy({1}, std::vector<float>{1})));
  EXPECT_TRUE(LooksLikeNpy("\x93NUMPY"));
  EXPECT_FALSE(LooksLikeNpy("\x93NUMP"));
  EXPECT_FALSE(LooksLikeNpy("1,2,3\n"));
  EXPECT_FALSE(LooksLikeNpy(""));
}

}  // namespace
}  // namespace nnserve::formats
