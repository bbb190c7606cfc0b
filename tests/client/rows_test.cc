// Tests for request building and tensor decoding (client/rows.h).
#include <cstring>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "client/rows.h"

namespace nnserve {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

RowBatch TwoByThree() { return RowBatch{2, 3, {1, -2, 3.5f, 0, 1e-7f, 6}}; }

TEST(RowsTest, ValuesEncodingCarriesShapeAndValues) {
  absl::StatusOr<v1::PredictRequest> request =
      MakePredictRequest("digits", 3, TwoByThree(), Encoding::kValues);
  ASSERT_TRUE(request.ok()) << request.status();
  EXPECT_EQ(request->model(), "digits");
  EXPECT_EQ(request->version(), 3);
  EXPECT_THAT(request->input().shape(), ElementsAre(2, 3));
  EXPECT_THAT(request->input().values(), ElementsAre(1, -2, 3.5f, 0, 1e-7f, 6));
  EXPECT_TRUE(request->input().raw().empty());
  EXPECT_EQ(TensorEncoding(request->input()), Encoding::kValues);
}

TEST(RowsTest, RawEncodingIsLittleEndianFloat32Bytes) {
  absl::StatusOr<v1::PredictRequest> request =
      MakePredictRequest("digits", 0, TwoByThree(), Encoding::kRaw);
  ASSERT_TRUE(request.ok()) << request.status();
  EXPECT_EQ(request->input().values_size(), 0);
  const std::string& raw = request->input().raw();
  ASSERT_EQ(raw.size(), 6 * sizeof(float));
  // 3.5f = 0x40600000, little-endian bytes 00 00 60 40.
  EXPECT_EQ(static_cast<unsigned char>(raw[8]), 0x00);
  EXPECT_EQ(static_cast<unsigned char>(raw[10]), 0x60);
  EXPECT_EQ(static_cast<unsigned char>(raw[11]), 0x40);
  EXPECT_EQ(TensorEncoding(request->input()), Encoding::kRaw);
}

TEST(RowsTest, DecodeRoundTripsBothEncodings) {
  for (Encoding encoding : {Encoding::kValues, Encoding::kRaw}) {
    v1::Tensor tensor;
    ASSERT_TRUE(EncodeTensor(TwoByThree(), encoding, &tensor).ok());
    absl::StatusOr<RowBatch> batch = DecodeTensor(tensor);
    ASSERT_TRUE(batch.ok()) << batch.status();
    EXPECT_EQ(batch->rows, 2);
    EXPECT_EQ(batch->cols, 3);
    EXPECT_EQ(batch->values, TwoByThree().values);
    EXPECT_EQ(batch->row(1)[2], 6.0f);
  }
}

TEST(RowsTest, DecodeOneDimensionalShapeIsOneRow) {
  v1::Tensor tensor;
  tensor.add_shape(2);
  tensor.add_values(4);
  tensor.add_values(5);
  absl::StatusOr<RowBatch> batch = DecodeTensor(tensor);
  ASSERT_TRUE(batch.ok()) << batch.status();
  EXPECT_EQ(batch->rows, 1);
  EXPECT_EQ(batch->cols, 2);
}

TEST(RowsTest, DecodeRejectsInconsistentTensors) {
  v1::Tensor both;
  both.add_shape(1);
  both.add_values(1);
  both.set_raw(std::string(4, '\0'));
  EXPECT_THAT(DecodeTensor(both).status().message(),
              HasSubstr("both `values` and `raw`"));

  v1::Tensor short_raw;
  short_raw.add_shape(2);
  short_raw.add_shape(2);
  short_raw.set_raw(std::string(12, '\0'));
  EXPECT_THAT(DecodeTensor(short_raw).status().message(),
              HasSubstr("`raw` holds 12 bytes; shape [2, 2] needs 4 float32 "
                        "= 16 bytes"));

  v1::Tensor short_values;
  short_values.add_shape(2);
  short_values.add_shape(2);
  short_values.add_values(1);
  EXPECT_THAT(DecodeTensor(short_values).status().message(),
              HasSubstr("`values` holds 1 elements; shape [2, 2] needs 4"));

  v1::Tensor rank3;
  for (int i = 0; i < 3; ++i) rank3.add_shape(1);
  rank3.add_values(1);
  EXPECT_THAT(DecodeTensor(rank3).status().message(), HasSubstr("rank 3"));

  v1::Tensor zero;
  zero.add_shape(0);
  zero.add_shape(3);
  EXPECT_THAT(DecodeTensor(zero).status().message(),
              HasSubstr("non-positive dimension"));
}

TEST(RowsTest, RequestBuildingValidatesItsInputs) {
  EXPECT_THAT(
      MakePredictRequest("m", 0, RowBatch{2, 3, {1, 2}}, Encoding::kValues)
          .status()
          .message(),
      HasSubstr("holds 2 values; expected rows x cols = 2 x 3 = 6"));
  EXPECT_THAT(MakePredictRequest("", 0, TwoByThree(), Encoding::kValues)
                  .status()
                  .message(),
              HasSubstr("model name must not be empty"));
  EXPECT_THAT(MakePredictRequest("m", -1, TwoByThree(), Encoding::kRaw)
                  .status()
                  .message(),
              HasSubstr("found -1"));
  EXPECT_FALSE(ValidateRowBatch(RowBatch{0, 3, {}}).ok());
}

TEST(RowsTest, RowVectorsPackAndUnpack) {
  absl::StatusOr<RowBatch> batch = MakeRowBatch({{1, 2, 3}, {4, 5, 6}});
  ASSERT_TRUE(batch.ok()) << batch.status();
  EXPECT_EQ(batch->rows, 2);
  EXPECT_EQ(batch->cols, 3);
  EXPECT_THAT(batch->values, ElementsAre(1, 2, 3, 4, 5, 6));
  EXPECT_THAT(ToRowVectors(*batch),
              ElementsAre(ElementsAre(1, 2, 3), ElementsAre(4, 5, 6)));
  EXPECT_THAT(MakeRowBatch({{1, 2}, {3}}).status().message(),
              HasSubstr("row 1 has 1 values; expected 2 like row 0"));
  EXPECT_FALSE(MakeRowBatch({}).ok());
  EXPECT_FALSE(MakeRowBatch({{}}).ok());
}

TEST(RowsTest, RandomRowsAreSeededAndInUnitRange) {
  const RowBatch a = RandomRows(4, 64, 42);
  const RowBatch b = RandomRows(4, 64, 42);
  const RowBatch c = RandomRows(4, 64, 43);
  ASSERT_EQ(a.values.size(), 256u);
  EXPECT_EQ(a.values, b.values);
  EXPECT_NE(a.values, c.values);
  for (float v : a.values) {
    EXPECT_GE(v, 0.0f);
    EXPECT_LT(v, 1.0f);
  }
}

TEST(RowsTest, TopKOrdersLargestFirstWithStableTies) {
  const float row[] = {0.1f, 0.7f, 0.05f, 0.7f, 0.15f};
  EXPECT_THAT(TopK(row, 5, 3), ElementsAre(1, 3, 4));
  EXPECT_THAT(TopK(row, 5, 10), ElementsAre(1, 3, 4, 0, 2));
  EXPECT_TRUE(TopK(row, 5, 0).empty());
}

}  // namespace
}  // namespace nnserve
