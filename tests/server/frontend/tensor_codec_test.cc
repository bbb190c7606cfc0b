#include "server/frontend/tensor_codec.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace nnserve::server {
namespace {

using ::testing::ElementsAre;
using ::testing::ElementsAreArray;
using ::testing::HasSubstr;

InputExpectation Expect(int64_t features, int64_t max_rows = 16) {
  return InputExpectation{.features = features,
                          .max_batch_rows = max_rows,
                          .description = "model 'm' version 1 input 'x'",
                          .name = {}};
}

v1::Tensor ValuesTensor(std::vector<int64_t> shape, std::vector<float> v) {
  v1::Tensor t;
  for (int64_t d : shape) t.add_shape(d);
  for (float x : v) t.add_values(x);
  return t;
}

v1::Tensor RawTensor(std::vector<int64_t> shape, const std::vector<float>& v) {
  v1::Tensor t;
  for (int64_t d : shape) t.add_shape(d);
  t.set_raw(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(float));
  return t;
}

std::vector<float> Iota(size_t n) {
  std::vector<float> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = 0.5f * static_cast<float>(i) - 1.0f;
  return v;
}

TEST(DecodeInputTest, ValuesTwoDimensionalViewsTheRequestWithoutCopy) {
  const v1::Tensor t = ValuesTensor({2, 3}, Iota(6));
  auto decoded = DecodeInput(t, Expect(3));
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(decoded->rows(), 2);
  EXPECT_EQ(decoded->features(), 3);
  EXPECT_EQ(decoded->encoding(), TensorEncoding::kValues);
  EXPECT_EQ(decoded->values().data(), t.values().data());
  EXPECT_THAT(decoded->values(), ElementsAreArray(Iota(6)));
}

TEST(DecodeInputTest, OneDimensionalShapeIsABatchOfOne) {
  auto decoded = DecodeInput(ValuesTensor({4}, Iota(4)), Expect(4));
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(decoded->rows(), 1);
  EXPECT_EQ(decoded->features(), 4);
}

TEST(DecodeInputTest, RawLittleEndianFloatsAreReadInPlace) {
  const std::vector<float> values = Iota(8);
  const v1::Tensor t = RawTensor({2, 4}, values);
  auto decoded = DecodeInput(t, Expect(4));
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(decoded->encoding(), TensorEncoding::kRaw);
  EXPECT_EQ(decoded->rows(), 2);
  EXPECT_THAT(decoded->values(), ElementsAreArray(values));
  // No copy: a raw call holds its input once.
  EXPECT_EQ(static_cast<const void*>(decoded->values().data()),
            static_cast<const void*>(t.raw().data()));
}

TEST(DecodeInputTest, RawSurvivesAMoveOfTheDecodedInput) {
  const std::vector<float> values = Iota(4);
  const v1::Tensor t = RawTensor({4}, values);
  auto decoded = DecodeInput(t, Expect(4));
  ASSERT_TRUE(decoded.ok());
  DecodedInput moved = *std::move(decoded);
  EXPECT_THAT(moved.values(), ElementsAreArray(values));
}

struct ErrorCase {
  std::string name;
  v1::Tensor tensor;
  absl::StatusCode code;
  std::vector<std::string> substrings;
};

std::vector<ErrorCase> ErrorCases() {
  std::vector<ErrorCase> cases;
  cases.push_back({"wrong feature count",
                   ValuesTensor({2, 3}, Iota(6)),
                   absl::StatusCode::kInvalidArgument,
                   {"model 'm' version 1 input 'x'", "3 features per row",
                    "shape [2, 3]", "expected 4"}});
  cases.push_back({"wrong feature count 1-D",
                   ValuesTensor({5}, Iota(5)),
                   absl::StatusCode::kInvalidArgument,
                   {"5 features per row", "expected 4"}});
  {
    std::vector<int64_t> dims(20000, 1);
    cases.push_back({"rank 20000, shown in short",
                     ValuesTensor(dims, Iota(1)),
                     absl::StatusCode::kInvalidArgument,
                     {"shape [1, 1, 1, 1, 1, 1, 1, 1, ... (20000 dimensions)]",
                      "rank 20000"}});
  }
  cases.push_back({"rank 3",
                   ValuesTensor({1, 1, 4}, Iota(4)),
                   absl::StatusCode::kInvalidArgument,
                   {"shape [1, 1, 4]", "rank 3", "[batch, 4] or [4]"}});
  cases.push_back({"rank 0",
                   ValuesTensor({}, Iota(4)),
                   absl::StatusCode::kInvalidArgument,
                   {"shape []", "rank 0"}});
  cases.push_back({"negative dimension",
                   ValuesTensor({-1, 4}, Iota(4)),
                   absl::StatusCode::kInvalidArgument,
                   {"[-1, 4]", "negative dimension"}});
  cases.push_back({"batch zero",
                   ValuesTensor({0, 4}, {}),
                   absl::StatusCode::kInvalidArgument,
                   {"batch size 0", "at least 1 row"}});
  cases.push_back({"too many rows",
                   ValuesTensor({17, 4}, Iota(68)),
                   absl::StatusCode::kInvalidArgument,
                   {"batch of 17 rows", "limit of 16", "--max-batch-rows"}});
  {
    v1::Tensor both = ValuesTensor({4}, Iota(4));
    both.set_raw(std::string(16, '\0'));
    cases.push_back(
        {"both values and raw",
         both,
         absl::StatusCode::kInvalidArgument,
         {"both values (4 floats) and raw (16 bytes)", "exactly one"}});
  }
  cases.push_back({"neither values nor raw",
                   ValuesTensor({2, 4}, {}),
                   absl::StatusCode::kInvalidArgument,
                   {"neither values nor raw", "8 floats", "[2, 4]"}});
  cases.push_back({"values length mismatch",
                   ValuesTensor({2, 4}, Iota(7)),
                   absl::StatusCode::kInvalidArgument,
                   {"values has 7 floats", "shape [2, 4] needs 8"}});
  {
    v1::Tensor raw = RawTensor({2, 4}, Iota(8));
    raw.mutable_raw()->pop_back();
    cases.push_back({"raw length mismatch",
                     raw,
                     absl::StatusCode::kInvalidArgument,
                     {"raw has 31 bytes", "needs 8", "32 bytes"}});
  }
  {
    std::vector<float> v = Iota(8);
    v[6] = std::numeric_limits<float>::quiet_NaN();
    cases.push_back({"NaN",
                     ValuesTensor({2, 4}, v),
                     absl::StatusCode::kInvalidArgument,
                     {"row 1 column 2 is NaN", "finite"}});
  }
  {
    std::vector<float> v = Iota(8);
    v[3] = -std::numeric_limits<float>::infinity();
    cases.push_back({"Inf raw",
                     RawTensor({2, 4}, v),
                     absl::StatusCode::kInvalidArgument,
                     {"row 0 column 3 is Inf"}});
  }
  return cases;
}

TEST(DecodeInputTest, EveryMalformedTensorIsRefusedWithAClearMessage) {
  for (const ErrorCase& c : ErrorCases()) {
    SCOPED_TRACE(c.name);
    auto decoded = DecodeInput(c.tensor, Expect(4));
    ASSERT_FALSE(decoded.ok());
    EXPECT_EQ(decoded.status().code(), c.code) << decoded.status();
    for (const std::string& s : c.substrings) {
      EXPECT_THAT(std::string(decoded.status().message()), HasSubstr(s));
    }
  }
}

TEST(PrepareOutputTest, BothEncodingsRoundTripThroughDecode) {
  const std::vector<float> out = Iota(12);
  for (TensorEncoding encoding :
       {TensorEncoding::kValues, TensorEncoding::kRaw}) {
    v1::Tensor t;
    std::span<float> dst = PrepareOutput(4, 3, encoding, &t);
    ASSERT_EQ(dst.size(), out.size());
    std::copy(out.begin(), out.end(), dst.begin());
    auto decoded = DecodeInput(t, Expect(3));
    ASSERT_TRUE(decoded.ok()) << decoded.status();
    EXPECT_EQ(decoded->encoding(), encoding);
    EXPECT_EQ(decoded->rows(), 4);
    EXPECT_THAT(decoded->values(), ElementsAreArray(out));
  }
}

TEST(PrepareOutputTest, ValuesStorageIsTheTensorsOwn) {
  v1::Tensor t;
  t.set_raw("stale");
  std::span<float> dst = PrepareOutput(2, 2, TensorEncoding::kValues, &t);
  ASSERT_EQ(dst.size(), 4u);
  dst[3] = 7.5f;
  EXPECT_THAT(t.shape(), ElementsAre(2, 2));
  EXPECT_THAT(t.values(), ElementsAre(0.0f, 0.0f, 0.0f, 7.5f));
  EXPECT_TRUE(t.raw().empty());
}

TEST(PrepareOutputTest, RawStorageIsTheTensorsBytes) {
  v1::Tensor t;
  t.add_values(1.0f);
  std::span<float> dst = PrepareOutput(1, 3, TensorEncoding::kRaw, &t);
  ASSERT_EQ(dst.size(), 3u);
  dst[0] = 1.5f;
  dst[2] = -2.0f;
  EXPECT_THAT(t.shape(), ElementsAre(1, 3));
  EXPECT_EQ(t.values_size(), 0);
  ASSERT_EQ(t.raw().size(), 12u);
  float back[3];
  std::memcpy(back, t.raw().data(), sizeof back);
  EXPECT_THAT(back, ElementsAre(1.5f, 0.0f, -2.0f));
}

}  // namespace
}  // namespace nnserve::server
