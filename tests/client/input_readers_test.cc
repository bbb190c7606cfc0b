// Tests for the client's input readers (client/input_readers.h): .npy and
// CSV go through the shared parsers of formats/, so the client reads every
// .npy the engine reads (Fortran order, float16, versions 1-3) and refuses a
// crafted header whose shape product wraps around; the file/stdin dispatch.
#include "client/input_readers.h"

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/client/subprocess.h"

namespace nnserve {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

// Builds .npy bytes: magic, version, header length, padded header, data.
std::string Npy(int major, const std::string& descr, const std::string& shape,
                const std::string& data, const std::string& fortran = "False") {
  std::string header = "{'descr': '" + descr +
                       "', 'fortran_order': " + fortran +
                       ", 'shape': " + shape + ", }";
  const size_t length_bytes = major == 1 ? 2 : 4;
  const size_t preamble = 8 + length_bytes;
  while ((preamble + header.size() + 1) % 64 != 0) header += ' ';
  header += '\n';
  std::string out = "\x93NUMPY";
  out += static_cast<char>(major);
  out += '\0';
  for (size_t i = 0; i < length_bytes; ++i) {
    out += static_cast<char>((header.size() >> (8 * i)) & 0xff);
  }
  return out + header + data;
}

template <typename T>
std::string Bytes(const std::vector<T>& values) {
  return std::string(reinterpret_cast<const char*>(values.data()),
                     values.size() * sizeof(T));
}

TEST(InputReadersTest, ReadsFloat32AndFloat64MatricesOfEveryVersion) {
  for (int major : {1, 2, 3}) {
    absl::StatusOr<RowBatch> f4 = ParseInputRows(
        Npy(major, "<f4", "(2, 3)", Bytes<float>({1, 2, 3, 4, 5, 6.5f})),
        "a.npy");
    ASSERT_TRUE(f4.ok()) << f4.status();
    EXPECT_EQ(f4->rows, 2);
    EXPECT_EQ(f4->cols, 3);
    EXPECT_THAT(f4->values, ElementsAre(1, 2, 3, 4, 5, 6.5f));
    absl::StatusOr<RowBatch> f8 = ParseInputRows(
        Npy(major, "<f8", "(1, 2)", Bytes<double>({0.25, -1e3})), "b.npy");
    ASSERT_TRUE(f8.ok()) << f8.status();
    EXPECT_THAT(f8->values, ElementsAre(0.25f, -1000.0f));
  }
}

// The old client reader refused Fortran-order arrays; the engine's parser
// transposes them, and the client now reads them the same way.
TEST(InputReadersTest, FortranOrderIsTransposedIntoRows) {
  // [[1, 2, 3], [4, 5, 6]] stored column-major.
  absl::StatusOr<RowBatch> batch = ParseInputRows(
      Npy(1, "<f4", "(2, 3)", Bytes<float>({1, 4, 2, 5, 3, 6}), "True"),
      "f.npy");
  ASSERT_TRUE(batch.ok()) << batch.status();
  EXPECT_EQ(batch->rows, 2);
  EXPECT_EQ(batch->cols, 3);
  EXPECT_THAT(batch->values, ElementsAre(1, 2, 3, 4, 5, 6));
}

// The old client reader refused float16; the shared parser widens it.
TEST(InputReadersTest, ReadsFloat16) {
  // 1.0 = 0x3c00, -2.0 = 0xc000 (IEEE binary16).
  absl::StatusOr<RowBatch> batch = ParseInputRows(
      Npy(1, "<f2", "(2,)", Bytes<uint16_t>({0x3c00, 0xc000})), "h.npy");
  ASSERT_TRUE(batch.ok()) << batch.status();
  EXPECT_EQ(batch->rows, 1);
  EXPECT_THAT(batch->values, ElementsAre(1.0f, -2.0f));
}

// 2^32 x 2^32 x 4 bytes wraps a 64-bit product to 0, which matched the
// empty data section of the old reader (it returned a 2^32-row batch with
// no values). The shared parser checks the product.
TEST(InputReadersTest, ShapeWhoseProductWrapsIsRefused) {
  for (const std::string& shape : {std::string("(4294967296, 4294967296)"),
                                   std::string("(4611686018427387904, 4)"),
                                   std::string("(9223372036854775807, 3)")}) {
    absl::StatusOr<RowBatch> batch =
        ParseInputRows(Npy(1, "<f4", shape, ""), "wrap.npy");
    ASSERT_FALSE(batch.ok()) << shape;
    EXPECT_EQ(batch.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(batch.status().message(), HasSubstr("wrap.npy: npy: "))
        << shape;
    EXPECT_THAT(batch.status().message(), HasSubstr("overflows 64 bits"))
        << shape;
  }
}

TEST(InputReadersTest, MalformedNpyErrorsNameTheSourceAndTheProblem) {
  const std::string f4x2 = Bytes<float>({1, 2});
  const struct {
    std::string bytes;
    std::string message;
  } cases[] = {
      {Npy(1, "<i4", "(2,)", f4x2), "unsupported dtype '<i4'"},
      {Npy(1, ">f4", "(2,)", f4x2), "big-endian not supported"},
      {Npy(1, "<f4", "(1, 1, 2)", f4x2), "rank 3"},
      {Npy(1, "<f4", "()", Bytes<float>({1})), "rank 0"},
      {Npy(1, "<f4", "(0, 2)", ""), "holds no values"},
      {Npy(1, "<f4", "(3,)", f4x2), "file truncated"},
      {Npy(1, "<f4", "(2, x)", f4x2), "expected an integer"},
  };
  for (const auto& c : cases) {
    absl::StatusOr<RowBatch> batch = ParseInputRows(c.bytes, "in.npy");
    ASSERT_FALSE(batch.ok()) << c.message;
    EXPECT_EQ(batch.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(batch.status().message(), HasSubstr("in.npy: npy: "));
    EXPECT_THAT(batch.status().message(), HasSubstr(c.message));
  }
}

TEST(InputReadersTest, CsvUsesTheSharedDialect) {
  absl::StatusOr<RowBatch> batch =
      ParseInputRows("# comment\r\n1, 2.5,-3\r\n\n  4e-1,+5,6  ", "in.csv");
  ASSERT_TRUE(batch.ok()) << batch.status();
  EXPECT_EQ(batch->rows, 2);
  EXPECT_EQ(batch->cols, 3);
  EXPECT_THAT(batch->values, ElementsAre(1, 2.5f, -3, 0.4f, 5, 6));
  absl::StatusOr<RowBatch> ragged = ParseInputRows("1,2,3\n4,5\n", "in.csv");
  ASSERT_FALSE(ragged.ok());
  EXPECT_THAT(ragged.status().message(),
              HasSubstr("in.csv: csv: line 2 has 2 values; expected 3"));
}

TEST(InputDispatchTest, MissingFileIsNotFound) {
  absl::StatusOr<RowBatch> batch = ReadInputRows("/nonexistent/rows.csv");
  ASSERT_FALSE(batch.ok());
  EXPECT_EQ(batch.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(batch.status().message(), HasSubstr("/nonexistent/rows.csv"));
}

TEST(InputDispatchTest, ChoosesParserByExtensionAndStreamByMagic) {
  const std::string dir = client_testing::MakeTempDir();
  const std::string csv = dir + "/rows.csv";
  std::ofstream(csv) << "1,2\n3,4\n";
  absl::StatusOr<RowBatch> from_csv = ReadInputRows(csv);
  ASSERT_TRUE(from_csv.ok()) << from_csv.status();
  EXPECT_THAT(from_csv->values, ElementsAre(1, 2, 3, 4));

  // A .npy file with CSV content is parsed as npy and rejected.
  const std::string fake_npy = dir + "/rows.npy";
  std::ofstream(fake_npy) << "1,2\n";
  absl::StatusOr<RowBatch> from_fake = ReadInputRows(fake_npy);
  ASSERT_FALSE(from_fake.ok());
  EXPECT_THAT(from_fake.status().message(), HasSubstr("bad magic"));

  // A real .npy file is read whatever reads it.
  const std::string npy = dir + "/real.npy";
  std::ofstream(npy, std::ios::binary)
      << Npy(1, "<f4", "(1, 2)", Bytes<float>({7, 8}));
  absl::StatusOr<RowBatch> from_npy = ReadInputRows(npy);
  ASSERT_TRUE(from_npy.ok()) << from_npy.status();
  EXPECT_THAT(from_npy->values, ElementsAre(7, 8));

  std::istringstream csv_stream("5,6\n");
  absl::StatusOr<RowBatch> from_stream =
      ReadInputRowsFromStream(csv_stream, "<stdin>");
  ASSERT_TRUE(from_stream.ok()) << from_stream.status();
  EXPECT_THAT(from_stream->values, ElementsAre(5, 6));

  std::istringstream npy_stream(std::string("\x93NUMPY\x01\x00", 8));
  absl::StatusOr<RowBatch> from_npy_stream =
      ReadInputRowsFromStream(npy_stream, "<stdin>");
  ASSERT_FALSE(from_npy_stream.ok());
  EXPECT_THAT(from_npy_stream.status().message(), HasSubstr("<stdin>: npy: "));
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace nnserve
