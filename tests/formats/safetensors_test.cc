// Tests for formats/safetensors.h: round trips for every dtype, special
// values, and one test per malformed-file error (each asserting that the
// message names the problem), plus a deterministic mutation loop.
#include "formats/safetensors.h"

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>

#include "absl/status/status.h"
#include "formats/half.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/util/tensor_files.h"

namespace {

using nnserve::formats::DType;
using nnserve::formats::ParseSafetensors;
using nnserve::formats::Tensor;
using nnserve::formats::TensorMap;
using nnserve::testing::SafetensorsBytes;
using ::testing::ElementsAre;
using ::testing::ElementsAreArray;
using ::testing::HasSubstr;

constexpr std::string_view kSource = "m/1/model.safetensors";

// A file from a literal JSON header and raw data bytes.
std::string Raw(std::string_view header, std::string_view data = "") {
  std::string out;
  for (int i = 0; i < 8; ++i) {
    out.push_back(static_cast<char>((header.size() >> (8 * i)) & 0xff));
  }
  out += header;
  out += data;
  return out;
}

// The error message for `bytes`, which must fail with InvalidArgument and
// name the source.
std::string ErrorOf(std::string_view bytes) {
  absl::StatusOr<TensorMap> result = ParseSafetensors(bytes, kSource);
  if (result.ok()) return "<parsed OK>";
  EXPECT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(result.status().message(), HasSubstr(kSource));
  return std::string(result.status().message());
}

TensorMap SampleTensors() {
  TensorMap tensors;
  tensors["dense.weight"] = {{2, 3},
                             {1.0f, -2.5f, 0.1f, 3e-5f, 1000.0f, -0.0f}};
  tensors["dense.bias"] = {{3}, {0.5f, -1.0f, 7.0f}};
  tensors["scale"] = {{}, {3.14159f}};
  tensors["empty"] = {{0, 4}, {}};
  return tensors;
}

class RoundTripTest : public ::testing::TestWithParam<DType> {};

TEST_P(RoundTripTest, EveryTensorComesBackWithShapeDTypeAndValues) {
  const DType dtype = GetParam();
  const TensorMap input = SampleTensors();
  absl::StatusOr<TensorMap> parsed =
      ParseSafetensors(SafetensorsBytes(input, dtype), kSource);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  ASSERT_EQ(parsed->size(), input.size());
  for (const auto& [name, tensor] : input) {
    SCOPED_TRACE(name);
    ASSERT_TRUE(parsed->contains(name));
    const Tensor& got = parsed->find(name)->second;
    EXPECT_EQ(got.shape, tensor.shape);
    EXPECT_EQ(got.file_dtype, dtype);
    ASSERT_EQ(got.values.size(), tensor.values.size());
    for (size_t i = 0; i < tensor.values.size(); ++i) {
      const float v = tensor.values[i];
      float expected = v;  // F32 and F64 hold every f32 exactly.
      if (dtype == DType::kF16) {
        expected =
            nnserve::formats::HalfToFloat(nnserve::testing::FloatToHalf(v));
        EXPECT_LE(std::fabs(got.values[i] - v),
                  std::fabs(v) * 0x1p-11f + 0x1p-25f);
      } else if (dtype == DType::kBF16) {
        expected =
            nnserve::formats::Bf16ToFloat(nnserve::testing::FloatToBf16(v));
        EXPECT_LE(std::fabs(got.values[i] - v), std::fabs(v) * 0x1p-8f);
      }
      EXPECT_EQ(got.values[i], expected) << "element " << i;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(AllDTypes, RoundTripTest,
                         ::testing::Values(DType::kF32, DType::kF64,
                                           DType::kF16, DType::kBF16),
                         [](const auto& info) {
                           return std::string(
                               nnserve::formats::DTypeName(info.param));
                         });

TEST(SafetensorsTest, MetadataIsIgnored) {
  TensorMap input;
  input["w"] = {{2}, {1.0f, 2.0f}};
  absl::StatusOr<TensorMap> parsed = ParseSafetensors(
      SafetensorsBytes(input, DType::kF32, {{"format", "pt"}, {"k", "v"}}),
      kSource);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  ASSERT_EQ(parsed->size(), 1u);
  EXPECT_THAT(parsed->at("w").values, ElementsAre(1.0f, 2.0f));
}

TEST(SafetensorsTest, EmptyHeaderGivesNoTensors) {
  absl::StatusOr<TensorMap> parsed = ParseSafetensors(Raw("{}"), kSource);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_TRUE(parsed->empty());
}

TEST(SafetensorsTest, UnalignedDataAndHeaderPaddingAreRead) {
  // A 7-byte-odd header length puts the f32 data at an unaligned address.
  const float values[2] = {1.5f, -8.25f};
  std::string data(sizeof values, '\0');
  std::memcpy(data.data(), values, sizeof values);
  absl::StatusOr<TensorMap> parsed = ParseSafetensors(
      Raw(R"({"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}   )", data),
      kSource);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_THAT(parsed->at("x").values, ElementsAre(1.5f, -8.25f));
}

TEST(SafetensorsTest, HalfSpecialValuesAreExact) {
  // Little-endian F16: +0, -0, smallest subnormal, largest, +inf, -inf, NaN.
  const std::string data(
      "\x00\x00\x00\x80\x01\x00\xff\x7b\x00\x7c\x00\xfc\x00\x7e", 14);
  absl::StatusOr<TensorMap> parsed = ParseSafetensors(
      Raw(R"({"h":{"dtype":"F16","shape":[7],"data_offsets":[0,14]}})", data),
      kSource);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  const std::vector<float>& v = parsed->at("h").values;
  constexpr float kInf = std::numeric_limits<float>::infinity();
  EXPECT_EQ(v[0], 0.0f);
  EXPECT_TRUE(std::signbit(v[1]));
  EXPECT_EQ(v[2], 0x1p-24f);
  EXPECT_EQ(v[3], 65504.0f);
  EXPECT_EQ(v[4], kInf);
  EXPECT_EQ(v[5], -kInf);
  EXPECT_TRUE(std::isnan(v[6]));
}

TEST(SafetensorsTest, Bf16SpecialValuesAreExact) {
  // Little-endian BF16: 1, -3, smallest subnormal, +inf, NaN.
  const std::string data("\x80\x3f\x40\xc0\x01\x00\x80\x7f\xc0\x7f", 10);
  absl::StatusOr<TensorMap> parsed = ParseSafetensors(
      Raw(R"({"b":{"dtype":"BF16","shape":[5],"data_offsets":[0,10]}})", data),
      kSource);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  const std::vector<float>& v = parsed->at("b").values;
  EXPECT_EQ(v[0], 1.0f);
  EXPECT_EQ(v[1], -3.0f);
  EXPECT_EQ(v[2], 0x1p-133f);
  EXPECT_EQ(v[3], std::numeric_limits<float>::infinity());
  EXPECT_TRUE(std::isnan(v[4]));
}

TEST(SafetensorsTest, F64IsNarrowedToNearestFloat) {
  const double values[3] = {0.1, -1e-300, 1e30};
  std::string data(sizeof values, '\0');
  std::memcpy(data.data(), values, sizeof values);
  absl::StatusOr<TensorMap> parsed = ParseSafetensors(
      Raw(R"({"d":{"dtype":"F64","shape":[3],"data_offsets":[0,24]}})", data),
      kSource);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_THAT(parsed->at("d").values, ElementsAre(0.1f, -0.0f, 1e30f));
}

// ---- Errors: one per check, each asserting what the message says. ----

TEST(SafetensorsErrorTest, ShorterThanLengthPrefix) {
  EXPECT_THAT(ErrorOf(std::string_view("\x05\x00\x00", 3)),
              HasSubstr("file is 3 bytes, shorter "
                        "than the 8-byte header length"));
}

TEST(SafetensorsErrorTest, HeaderLengthPastEndOfFile) {
  std::string bytes = Raw("{}");
  bytes[0] = 50;
  EXPECT_THAT(ErrorOf(bytes),
              HasSubstr("header length 50 runs past the end of the file (only "
                        "2 bytes follow"));
}

TEST(SafetensorsErrorTest, AbsurdHeaderLength) {
  std::string bytes = Raw("{}");
  bytes[7] = 0x10;  // 2^60 + 2.
  EXPECT_THAT(ErrorOf(bytes), HasSubstr("exceeds the limit of 104857600"));
}

TEST(SafetensorsErrorTest, HeaderNotJson) {
  EXPECT_THAT(ErrorOf(Raw("{\"a\": ")), HasSubstr("header is not valid JSON"));
  EXPECT_THAT(ErrorOf(Raw("hello")), HasSubstr("header is not valid JSON"));
}

TEST(SafetensorsErrorTest, HeaderNotAnObject) {
  EXPECT_THAT(ErrorOf(Raw("[1, 2]")),
              HasSubstr("header is a JSON array, expected an object"));
}

TEST(SafetensorsErrorTest, TensorEntryNotAnObject) {
  EXPECT_THAT(ErrorOf(Raw(R"({"w": 5})")),
              HasSubstr("tensor 'w': entry is a JSON integer 5, expected an "
                        "object"));
}

TEST(SafetensorsErrorTest, MissingFields) {
  EXPECT_THAT(ErrorOf(Raw(R"({"w":{"shape":[],"data_offsets":[0,4]}})")),
              HasSubstr("tensor 'w': missing field 'dtype'"));
  EXPECT_THAT(ErrorOf(Raw(R"({"w":{"dtype":"F32","data_offsets":[0,4]}})")),
              HasSubstr("tensor 'w': missing field 'shape'"));
  EXPECT_THAT(ErrorOf(Raw(R"({"w":{"dtype":"F32","shape":[]}})")),
              HasSubstr("tensor 'w': missing field 'data_offsets'"));
}

TEST(SafetensorsErrorTest, WrongTypedFields) {
  EXPECT_THAT(
      ErrorOf(Raw(R"({"w":{"dtype":32,"shape":[1],"data_offsets":[0,4]}})")),
      HasSubstr("dtype is a JSON integer 32, expected a string"));
  EXPECT_THAT(
      ErrorOf(Raw(R"({"w":{"dtype":"F32","shape":"1","data_offsets":[0,4]}})")),
      HasSubstr("shape is a JSON string \"1\", expected an array"));
  EXPECT_THAT(
      ErrorOf(
          Raw(R"({"w":{"dtype":"F32","shape":[1.5],"data_offsets":[0,4]}})")),
      HasSubstr("shape[0] is a JSON number 1.5, expected a non-negative"));
  EXPECT_THAT(
      ErrorOf(Raw(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[4]}})")),
      HasSubstr("data_offsets is an array of 1 elements, expected [begin, "
                "end]"));
  EXPECT_THAT(
      ErrorOf(Raw(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":7}})")),
      HasSubstr("data_offsets is a JSON integer 7, expected [begin, end]"));
  EXPECT_THAT(
      ErrorOf(
          Raw(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[-4,0]}})")),
      HasSubstr("data_offsets[0] is a JSON integer -4, expected a "
                "non-negative integer"));
  EXPECT_THAT(
      ErrorOf(
          Raw(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0,"4"]}})")),
      HasSubstr("data_offsets[1] is a JSON string"));
}

// Found by reasoning over the fuzz harness (the fuzzer's inputs are too
// small to reach it): the error for a malformed data_offsets used to dump
// the JSON value, which recurses once per nesting level, so a crafted
// header of a million nested arrays overflowed the stack (SIGSEGV while
// loading a model).
TEST(SafetensorsErrorTest, DeeplyNestedOffsetsAreDescribedNotDumped) {
  constexpr int kDepth = 1000000;
  const std::string header =
      R"({"w":{"dtype":"F32","shape":[1],"data_offsets":)" +
      std::string(kDepth, '[') + std::string(kDepth, ']') + "}}";
  EXPECT_THAT(ErrorOf(Raw(header)),
              HasSubstr("data_offsets is an array of 1 elements"));
}

TEST(SafetensorsErrorTest, LongNamesAreClippedInMessages) {
  const std::string name(100000, 'n');
  const std::string message = ErrorOf(Raw(
      R"({")" + name + R"(":{"dtype":"I8","shape":[1],"data_offsets":[0,1]}})",
      "x"));
  EXPECT_THAT(message, HasSubstr("(100000 bytes)"));
  EXPECT_LT(message.size(), 400u);
}

TEST(SafetensorsErrorTest, UnsupportedDType) {
  EXPECT_THAT(
      ErrorOf(Raw(R"({"w":{"dtype":"I32","shape":[1],"data_offsets":[0,4]}})",
                  std::string(4, '\0'))),
      HasSubstr("tensor 'w': unsupported dtype 'I32', expected one of F32, "
                "F64, F16, BF16"));
}

TEST(SafetensorsErrorTest, NegativeDimension) {
  EXPECT_THAT(
      ErrorOf(
          Raw(R"({"w":{"dtype":"F32","shape":[2,-2],"data_offsets":[0,0]}})")),
      HasSubstr("shape[1] = -2 is negative"));
}

TEST(SafetensorsErrorTest, DimensionTooLarge) {
  EXPECT_THAT(
      ErrorOf(Raw(R"({"w":{"dtype":"F32","shape":[9223372036854775808],)"
                  R"("data_offsets":[0,0]}})")),
      HasSubstr("shape[0] = 9223372036854775808 is too large"));
}

TEST(SafetensorsErrorTest, ElementCountOverflow) {
  EXPECT_THAT(ErrorOf(Raw(R"({"w":{"dtype":"F32","shape":[4294967296,)"
                          R"(4294967296,2],"data_offsets":[0,0]}})")),
              HasSubstr("element count of shape [4294967296, 4294967296, 2] "
                        "overflows 64 bits"));
  EXPECT_THAT(
      ErrorOf(Raw(R"({"w":{"dtype":"F64","shape":[4611686018427387904],)"
                  R"("data_offsets":[0,0]}})")),
      HasSubstr("byte size of shape [4611686018427387904] x 8 bytes "
                "overflows 64 bits"));
}

TEST(SafetensorsErrorTest, BeginAfterEnd) {
  EXPECT_THAT(
      ErrorOf(Raw(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[8,4]}})",
                  std::string(8, '\0'))),
      HasSubstr("tensor 'w': data_offsets begin 8 is greater than end 4"));
}

TEST(SafetensorsErrorTest, EndPastDataSectionIsTruncation) {
  EXPECT_THAT(
      ErrorOf(Raw(R"({"w":{"dtype":"F32","shape":[3],"data_offsets":[0,12]}})",
                  std::string(8, '\0'))),
      HasSubstr("tensor 'w': file truncated: data_offsets end 12 is past the "
                "end of the data section (8 bytes)"));
}

TEST(SafetensorsErrorTest, ByteLengthDoesNotMatchShape) {
  EXPECT_THAT(
      ErrorOf(Raw(R"({"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})",
                  std::string(8, '\0'))),
      HasSubstr("tensor 'w': data_offsets [0, 8] span 8 bytes, expected 12 "
                "(shape [3] = 3 elements x 4 bytes of F32)"));
}

TEST(SafetensorsErrorTest, OverlappingTensors) {
  EXPECT_THAT(
      ErrorOf(Raw(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                  R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                  std::string(12, '\0'))),
      HasSubstr("tensors 'a' [0, 8) and 'b' [4, 12) overlap"));
}

TEST(SafetensorsErrorTest, HoleBetweenTensors) {
  EXPECT_THAT(
      ErrorOf(Raw(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                  R"("b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})",
                  std::string(12, '\0'))),
      HasSubstr("data section bytes [4, 8) are not covered by any tensor"));
}

TEST(SafetensorsErrorTest, TrailingBytesAfterLastTensor) {
  EXPECT_THAT(
      ErrorOf(Raw(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})",
                  std::string(6, '\0'))),
      HasSubstr("data section is 6 bytes but the tensors cover only 4"));
}

TEST(SafetensorsErrorTest, MalformedMetadata) {
  EXPECT_THAT(ErrorOf(Raw(R"({"__metadata__": [1]})")),
              HasSubstr("__metadata__ is a JSON array, expected an object"));
  EXPECT_THAT(ErrorOf(Raw(R"({"__metadata__": {"epochs": 3}})")),
              HasSubstr("__metadata__ entry 'epochs' is a JSON integer 3, "
                        "expected a string"));
}

TEST(SafetensorsErrorTest, F64BeyondFloatRange) {
  const double values[2] = {1.0, -1e300};
  std::string data(sizeof values, '\0');
  std::memcpy(data.data(), values, sizeof values);
  EXPECT_THAT(
      ErrorOf(Raw(R"({"d":{"dtype":"F64","shape":[2],"data_offsets":[0,16]}})",
                  data)),
      HasSubstr("tensor 'd': F64 value -1e+300 at element 1 is outside the "
                "f32 range"));
}

// ---- Mutations: never crash, never read out of bounds (run under ASan). ----

TEST(SafetensorsMutationTest, EveryTruncationIsAnError) {
  const std::string valid = SafetensorsBytes(SampleTensors(), DType::kF16);
  ASSERT_TRUE(ParseSafetensors(valid, kSource).ok());
  for (size_t length = 0; length < valid.size(); ++length) {
    absl::StatusOr<TensorMap> result =
        ParseSafetensors(std::string(valid.substr(0, length)), kSource);
    EXPECT_FALSE(result.ok()) << "prefix of " << length << " bytes parsed";
  }
}

TEST(SafetensorsMutationTest, HeaderByteFlipsGiveErrorOrConsistentTensors) {
  TensorMap input = SampleTensors();
  for (DType dtype : {DType::kF32, DType::kF64, DType::kBF16}) {
    const std::string valid = SafetensorsBytes(input, dtype);
    uint64_t header_len = 0;
    std::memcpy(&header_len, valid.data(), 8);
    int accepted = 0;
    for (size_t pos = 0; pos < 8 + header_len; ++pos) {
      for (unsigned char mask : {0x01, 0x02, 0x10, 0x20, 0x80, 0xff}) {
        std::string mutated = valid;
        mutated[pos] = static_cast<char>(mutated[pos] ^ mask);
        absl::StatusOr<TensorMap> result = ParseSafetensors(mutated, kSource);
        if (!result.ok()) continue;
        ++accepted;
        for (const auto& [name, tensor] : *result) {
          size_t count = 1;
          for (int64_t dim : tensor.shape) count *= static_cast<size_t>(dim);
          EXPECT_EQ(tensor.values.size(), count)
              << "tensor " << name << " after flipping byte " << pos;
        }
      }
    }
    // Flips inside tensor names still give valid files; most others do not.
    EXPECT_GT(accepted, 0);
  }
}

}  // namespace
