// Tests for engine/rows.h: the finite-input check and the per-row argmax.
#include "engine/rows.h"

#include <cmath>
#include <limits>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace nnserve::engine {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr float kInf = std::numeric_limits<float>::infinity();

TEST(ArgmaxPerRowTest, LargestValuePerRowWithTiesToTheLowestIndex) {
  const std::vector<float> values = {0.1f, 0.7f, 0.2f,   // row 0
                                     -3.f, -1.f, -2.f,   // row 1
                                     0.5f, 0.1f, 0.5f};  // row 2 (a tie)
  EXPECT_THAT(ArgmaxPerRow(values, 3, 3), ElementsAre(1, 1, 0));
}

TEST(ArgmaxPerRowTest, NonFiniteRowsHaveNoClassInsteadOfClassZero) {
  // A NaN anywhere in a row (the comparison with NaN is always false, so a
  // plain argmax would report whatever index it started from), a row of
  // all NaN (used to come out as class 0) and an overflow to +/-Inf.
  const std::vector<float> values = {kNaN,  0.2f, 0.9f,   // row 0
                                     kNaN,  kNaN, kNaN,   // row 1
                                     0.1f,  kInf, 0.3f,   // row 2
                                     -kInf, 0.f,  1.f,    // row 3
                                     0.3f,  0.2f, 0.1f};  // row 4: finite
  EXPECT_THAT(ArgmaxPerRow(values, 5, 3),
              ElementsAre(kNoClass, kNoClass, kNoClass, kNoClass, 0));
}

TEST(CheckFiniteRowsTest, NamesTheFirstNonFiniteRowAndColumn) {
  EXPECT_TRUE(CheckFiniteRows(std::vector<float>{1, 2, 3, 4}, 2, "m").ok());
  const absl::Status status =
      CheckFiniteRows(std::vector<float>{1, 2, 3, kNaN}, 2, "model 'm'");
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("model 'm': input row 1 column 1 "
                                          "is NaN; expected finite values"));
}

}  // namespace
}  // namespace nnserve::engine
