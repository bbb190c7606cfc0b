// Tests for formats/npy.h: round trips over dtypes, format versions, shapes
// and Fortran order; a file written by NumPy itself; the header dict
// parser; SerializeNpy; one test per malformed-file error (each asserting
// the message names the problem); and a deterministic mutation loop.
#include "formats/npy.h"

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <tuple>

#include "absl/status/status.h"
#include "formats/half.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/util/tensor_files.h"

namespace {

using nnserve::formats::DType;
using nnserve::formats::ParseNpy;
using nnserve::formats::SerializeNpy;
using nnserve::formats::Tensor;
using nnserve::testing::NpyBytes;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr std::string_view kSource = "m/1/dense.weight.npy";

// A file with the given version, literal header dict (padded with spaces
// and '\n' as NumPy does) and raw data bytes.
std::string Raw(int major, std::string_view dict, std::string_view data = "") {
  const size_t length_bytes = major == 1 ? 2 : 4;
  std::string header(dict);
  header.append((64 - (8 + length_bytes + header.size() + 1) % 64) % 64, ' ');
  header.push_back('\n');
  std::string out = "\x93NUMPY";
  out.push_back(static_cast<char>(major));
  out.push_back('\0');
  for (size_t i = 0; i < length_bytes; ++i) {
    out.push_back(static_cast<char>((header.size() >> (8 * i)) & 0xff));
  }
  return out + header + std::string(data);
}

std::string FloatBytes(std::initializer_list<float> values) {
  std::string out(values.size() * 4, '\0');
  std::memcpy(out.data(), std::data(values), out.size());
  return out;
}

// The error message for `bytes`, which must fail with InvalidArgument and
// name the source.
std::string ErrorOf(std::string_view bytes) {
  absl::StatusOr<Tensor> result = ParseNpy(bytes, kSource);
  if (result.ok()) return "<parsed OK>";
  EXPECT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(result.status().message(), HasSubstr(kSource));
  return std::string(result.status().message());
}

// Values distinct per position so any misplaced element is caught.
Tensor Sample(std::vector<int64_t> shape) {
  Tensor t;
  t.shape = std::move(shape);
  size_t count = 1;
  for (int64_t d : t.shape) count *= static_cast<size_t>(d);
  for (size_t i = 0; i < count; ++i) {
    t.values.push_back(static_cast<float>(i) * 0.75f - 3.0f);
  }
  return t;
}

using RoundTripParam = std::tuple<DType, int, bool, std::vector<int64_t>>;

class NpyRoundTripTest : public ::testing::TestWithParam<RoundTripParam> {};

TEST_P(NpyRoundTripTest, ValuesShapeAndDTypeSurvive) {
  const auto& [dtype, version, fortran, shape] = GetParam();
  const Tensor input = Sample(shape);
  absl::StatusOr<Tensor> parsed =
      ParseNpy(NpyBytes(input, dtype, version, fortran), kSource);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->shape, input.shape);
  EXPECT_EQ(parsed->file_dtype, dtype);
  // Sample values are multiples of 0.75 below 100: exact in F16 too.
  EXPECT_EQ(parsed->values, input.values);
}

INSTANTIATE_TEST_SUITE_P(
    DTypesVersionsOrdersShapes, NpyRoundTripTest,
    ::testing::Combine(::testing::Values(DType::kF32, DType::kF64, DType::kF16),
                       ::testing::Values(1, 2, 3), ::testing::Bool(),
                       ::testing::Values(std::vector<int64_t>{},
                                         std::vector<int64_t>{5},
                                         std::vector<int64_t>{2, 3},
                                         std::vector<int64_t>{2, 3, 4},
                                         std::vector<int64_t>{0, 3})));

TEST(NpyTest, F16ValuesAreRoundedToNearestEven) {
  Tensor input{{3}, {0.1f, 1.0f + 0x1p-11f, 70000.0f}};
  absl::StatusOr<Tensor> parsed =
      ParseNpy(NpyBytes(input, DType::kF16), kSource);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_THAT(
      parsed->values,
      ElementsAre(0x1.998p-4f, 1.0f, std::numeric_limits<float>::infinity()));
}

TEST(NpyTest, ReadsAFileWrittenByNumPy) {
  // np.save of np.asfortranarray([[1.5, -2, 3], [4, 0.25, -65504]], '<f2').
  const std::string file =
      std::string("\x93NUMPY\x01\x00\x76\x00", 10) +
      "{'descr': '<f2', 'fortran_order': True, 'shape': (2, 3), }" +
      std::string(59, ' ') + "\n" +
      std::string("\x00\x3e\x00\x44\x00\xc0\x00\x34\x00\x42\xff\xfb", 12);
  ASSERT_EQ(file.size(), 140u);
  absl::StatusOr<Tensor> parsed = ParseNpy(file, kSource);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_THAT(parsed->shape, ElementsAre(2, 3));
  EXPECT_THAT(parsed->values,
              ElementsAre(1.5f, -2.0f, 3.0f, 4.0f, 0.25f, -65504.0f));
}

TEST(NpyTest, FortranOrderIsTransposedIntoCOrder) {
  // Column-major 2x3 data 1..6 is the matrix [[1, 3, 5], [2, 4, 6]].
  absl::StatusOr<Tensor> parsed = ParseNpy(
      Raw(1, "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }",
          FloatBytes({1, 2, 3, 4, 5, 6})),
      kSource);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_THAT(parsed->values, ElementsAre(1, 3, 5, 2, 4, 6));
}

TEST(NpyTest, HeaderDictVariantsAreAccepted) {
  const std::string data = FloatBytes({1, 2});
  for (std::string_view dict : {
           "{'shape': (2,), 'fortran_order': False, 'descr': '<f4'}",
           "{\"descr\": \"<f4\", \"fortran_order\": False, \"shape\": (2,)}",
           "{ 'descr' : '<f4' ,\n'fortran_order':False,'shape':( 2 , ) , }",
           "{'descr': '<f4', 'fortran_order': False, 'shape': (2L,), }",
           "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 2), }",
       }) {
    absl::StatusOr<Tensor> parsed = ParseNpy(Raw(1, dict, data), kSource);
    ASSERT_TRUE(parsed.ok()) << dict << ": " << parsed.status();
    EXPECT_THAT(parsed->values, ElementsAre(1, 2)) << dict;
  }
}

TEST(NpyTest, ZeroDimensionalArray) {
  absl::StatusOr<Tensor> parsed =
      ParseNpy(Raw(3, "{'descr': '<f4', 'fortran_order': False, 'shape': (), }",
                   FloatBytes({42.5f})),
               kSource);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_TRUE(parsed->shape.empty());
  EXPECT_THAT(parsed->values, ElementsAre(42.5f));
}

TEST(SerializeNpyTest, WritesAlignedVersionOneF32File) {
  const std::vector<float> values = {1, 2, 3, 4, 5, 6};
  const std::string file = SerializeNpy({2, 3}, values);
  ASSERT_GE(file.size(), 10u);
  EXPECT_EQ(file.substr(0, 8), std::string("\x93NUMPY\x01\x00", 8));
  const size_t header_len = static_cast<unsigned char>(file[8]) |
                            static_cast<unsigned char>(file[9]) << 8;
  EXPECT_EQ((10 + header_len) % 64, 0u);
  EXPECT_EQ(file.size(), 10 + header_len + values.size() * 4);
  EXPECT_THAT(file.substr(10, header_len),
              HasSubstr("{'descr': '<f4', 'fortran_order': False, "
                        "'shape': (2, 3), }"));
  EXPECT_EQ(file[10 + header_len - 1], '\n');
  EXPECT_EQ(file.substr(10 + header_len), FloatBytes({1, 2, 3, 4, 5, 6}));
}

TEST(SerializeNpyTest, RoundTripsScalarsVectorsAndEmptyArrays) {
  const float scalar = -7.5f;
  absl::StatusOr<Tensor> parsed =
      ParseNpy(SerializeNpy({}, {&scalar, 1}), kSource);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_TRUE(parsed->shape.empty());
  EXPECT_THAT(parsed->values, ElementsAre(-7.5f));

  const std::vector<float> vector = {0.5f, -0.25f, 8.0f};
  parsed = ParseNpy(SerializeNpy({3}, vector), kSource);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_THAT(parsed->shape, ElementsAre(3));
  EXPECT_EQ(parsed->values, vector);

  parsed = ParseNpy(SerializeNpy({4, 0}, {}), kSource);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_THAT(parsed->shape, ElementsAre(4, 0));
  EXPECT_TRUE(parsed->values.empty());
}

// ---- Errors: one per check, each asserting what the message says. ----

constexpr std::string_view kGoodDict =
    "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }";

TEST(NpyErrorTest, BadMagic) {
  EXPECT_THAT(ErrorOf("PK\x03\x04 zip"),
              HasSubstr("bad magic: expected \\x93NUMPY, found "
                        "'\\x50\\x4b\\x03\\x04\\x20\\x7a'"));
  EXPECT_THAT(ErrorOf(""), HasSubstr("bad magic"));
}

TEST(NpyErrorTest, TruncatedPreamble) {
  EXPECT_THAT(ErrorOf("\x93NUMPY\x01"),
              HasSubstr("file truncated: 7 bytes, expected at least 8"));
  EXPECT_THAT(ErrorOf(std::string_view("\x93NUMPY\x02\x00\x10\x00", 10)),
              HasSubstr("file truncated: 10 bytes, expected at least 12"));
}

TEST(NpyErrorTest, UnsupportedVersion) {
  std::string file = Raw(1, kGoodDict, FloatBytes({1, 2}));
  file[6] = 4;
  EXPECT_THAT(ErrorOf(file), HasSubstr("unsupported format version 4.0, "
                                       "expected 1.0, 2.0 or 3.0"));
  file[6] = 1;
  file[7] = 1;
  EXPECT_THAT(ErrorOf(file), HasSubstr("unsupported format version 1.1"));
}

TEST(NpyErrorTest, HeaderLengthPastEnd) {
  std::string file = Raw(2, kGoodDict);
  file[10] = 0x01;  // Header length grows by 64 KiB.
  EXPECT_THAT(ErrorOf(file),
              HasSubstr("header length 65652 runs past the end of the file "
                        "(only 116 bytes follow the 12-byte preamble)"));
}

TEST(NpyErrorTest, MalformedDict) {
  const std::string data = FloatBytes({1, 2});
  EXPECT_THAT(ErrorOf(Raw(1, "['descr', '<f4']", data)),
              HasSubstr("malformed header dict at offset 0: expected '{'"));
  EXPECT_THAT(ErrorOf(Raw(1, "{'descr': '<f4', ", data)),
              HasSubstr("expected a quoted string, found end of header"));
  EXPECT_THAT(ErrorOf(Raw(1, "{'descr' '<f4'}", data)),
              HasSubstr("expected ':' after a dict key, found '''"));
  EXPECT_THAT(
      ErrorOf(Raw(1, "{'descr': <f4}", data)),
      HasSubstr("expected a string, True, False or a tuple, found '<'"));
  EXPECT_THAT(ErrorOf(Raw(1, "{'descr': '<f4' 'shape': (2,)}", data)),
              HasSubstr("expected ',' or '}' after a dict value"));
  EXPECT_THAT(ErrorOf(Raw(1, "{'shape': (2; 3)}", data)),
              HasSubstr("expected ',' or ')' in a tuple, found ';'"));
  EXPECT_THAT(ErrorOf(Raw(1, "{'shape': (2,), } extra", data)),
              HasSubstr("expected only padding after the dict, found 'e'"));
  EXPECT_THAT(ErrorOf(Raw(1, "{'shape': (x,)}", data)),
              HasSubstr("expected an integer, found 'x'"));
  EXPECT_THAT(ErrorOf(Raw(1, "{'shape': (99999999999999999999,)}", data)),
              HasSubstr("expected an integer that fits in 64 bits"));
  EXPECT_THAT(ErrorOf(Raw(1, "{'descr': '<f\\x34'}", data)),
              HasSubstr("expected a string without escapes, found '\\'"));
  EXPECT_THAT(ErrorOf(Raw(1, "{'descr': '<f4", data)),
              HasSubstr("expected a closing quote, found byte 0x0a"));
  EXPECT_THAT(ErrorOf(Raw(1, "{'shape': (2)}", data)),
              HasSubstr("'(2)' is not a tuple, expected '(2,)'"));
}

TEST(NpyErrorTest, MissingUnexpectedAndDuplicateKeys) {
  const std::string data = FloatBytes({1, 2});
  EXPECT_THAT(ErrorOf(Raw(1, "{'descr': '<f4', 'shape': (2,)}", data)),
              HasSubstr("header is missing key 'fortran_order', expected "
                        "'descr', 'fortran_order' and 'shape'"));
  EXPECT_THAT(ErrorOf(Raw(1, "{'descr': '<f4', 'fortran_order': False}", data)),
              HasSubstr("header is missing key 'shape'"));
  EXPECT_THAT(
      ErrorOf(Raw(1,
                  "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), "
                  "'order': 'C'}",
                  data)),
      HasSubstr("unexpected header key 'order'"));
  EXPECT_THAT(ErrorOf(Raw(1,
                          "{'descr': '<f4', 'descr': '<f4', 'fortran_order': "
                          "False, 'shape': (2,)}",
                          data)),
              HasSubstr("duplicate header key 'descr'"));
}

TEST(NpyErrorTest, WrongTypedValues) {
  const std::string data = FloatBytes({1, 2});
  EXPECT_THAT(
      ErrorOf(Raw(1, "{'descr': (4,), 'fortran_order': False, 'shape': (2,)}",
                  data)),
      HasSubstr("header 'descr' is not a string"));
  EXPECT_THAT(
      ErrorOf(Raw(1, "{'descr': '<f4', 'fortran_order': 'no', 'shape': (2,)}",
                  data)),
      HasSubstr("header 'fortran_order' is not True or False"));
  EXPECT_THAT(
      ErrorOf(Raw(1, "{'descr': '<f4', 'fortran_order': False, 'shape': '2'}",
                  data)),
      HasSubstr("header 'shape' is not a tuple of integers"));
}

TEST(NpyErrorTest, UnsupportedDTypes) {
  EXPECT_THAT(
      ErrorOf(Raw(1, "{'descr': '<i4', 'fortran_order': False, 'shape': (2,)}",
                  FloatBytes({1, 2}))),
      HasSubstr("unsupported dtype '<i4', expected '<f4', '<f8' or '<f2'"));
  EXPECT_THAT(
      ErrorOf(Raw(1, "{'descr': '|f4', 'fortran_order': False, 'shape': (2,)}",
                  FloatBytes({1, 2}))),
      HasSubstr("unsupported dtype '|f4'"));
}

TEST(NpyErrorTest, BigEndianIsRefusedClearly) {
  EXPECT_THAT(
      ErrorOf(Raw(1, "{'descr': '>f4', 'fortran_order': False, 'shape': (2,)}",
                  FloatBytes({1, 2}))),
      HasSubstr("dtype '>f4': big-endian not supported, expected "
                "little-endian '<f4', '<f8' or '<f2'"));
}

TEST(NpyErrorTest, NegativeDimension) {
  EXPECT_THAT(
      ErrorOf(Raw(1,
                  "{'descr': '<f4', 'fortran_order': False, 'shape': (2, "
                  "-1)}")),
      HasSubstr("shape [2, -1] has negative dimension -1 at index 1"));
}

TEST(NpyErrorTest, ElementCountOverflow) {
  EXPECT_THAT(
      ErrorOf(Raw(1,
                  "{'descr': '<f4', 'fortran_order': False, 'shape': "
                  "(4294967296, 4294967296)}")),
      HasSubstr("element count of shape [4294967296, 4294967296] overflows"));
}

TEST(NpyErrorTest, DataShorterThanShape) {
  EXPECT_THAT(
      ErrorOf(Raw(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (3,)}",
                  FloatBytes({1, 2}))),
      HasSubstr("file truncated: data is 8 bytes, expected 12 (shape [3] = 3 "
                "elements x 4 bytes of '<f4')"));
}

TEST(NpyErrorTest, DataLongerThanShape) {
  EXPECT_THAT(
      ErrorOf(Raw(1, "{'descr': '<f8', 'fortran_order': False, 'shape': (1,)}",
                  FloatBytes({1, 2, 3}))),
      HasSubstr("data is 12 bytes, expected 8 (shape [1] = 1 elements x 8 "
                "bytes of '<f8'); trailing bytes"));
}

TEST(NpyErrorTest, F64BeyondFloatRange) {
  const double value = 3e40;
  std::string data(8, '\0');
  std::memcpy(data.data(), &value, 8);
  EXPECT_THAT(
      ErrorOf(Raw(1, "{'descr': '<f8', 'fortran_order': False, 'shape': ()}",
                  data)),
      HasSubstr("'<f8' value 3e+40 at element 0 is outside the f32 range"));
}

// ---- Mutations: never crash, never read out of bounds (run under ASan). ----

TEST(NpyMutationTest, EveryTruncationIsAnError) {
  for (int version : {1, 2, 3}) {
    const std::string valid = NpyBytes(Sample({3, 2}), DType::kF16, version);
    ASSERT_TRUE(ParseNpy(valid, kSource).ok());
    for (size_t length = 0; length < valid.size(); ++length) {
      EXPECT_FALSE(ParseNpy(std::string(valid.substr(0, length)), kSource).ok())
          << "version " << version << " prefix of " << length << " bytes";
    }
  }
}

TEST(NpyMutationTest, HeaderByteFlipsGiveErrorOrConsistentTensor) {
  for (int version : {1, 3}) {
    const std::string valid =
        NpyBytes(Sample({2, 3}), DType::kF64, version, /*fortran_order=*/true);
    const size_t data_start = valid.size() - 6 * 8;
    int accepted = 0;
    for (size_t pos = 0; pos < data_start; ++pos) {
      // 0x29 turns a padding space into a tab, which must stay accepted.
      for (unsigned char mask :
           {0x01, 0x02, 0x04, 0x10, 0x20, 0x29, 0x80, 0xff}) {
        std::string mutated = valid;
        mutated[pos] = static_cast<char>(mutated[pos] ^ mask);
        absl::StatusOr<Tensor> result = ParseNpy(mutated, kSource);
        if (!result.ok()) continue;
        ++accepted;
        size_t count = 1;
        for (int64_t dim : result->shape) count *= static_cast<size_t>(dim);
        EXPECT_EQ(result->values.size(), count) << "flipped byte " << pos;
      }
    }
    EXPECT_GT(accepted, 0);
  }
}

}  // namespace
