// Tests for the minimal .npy reader (client/input_readers.h).
#include <cstring>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "client/input_readers.h"

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

TEST(NpyReaderTest, ReadsFloat32MatrixVersion1) {
  absl::StatusOr<RowBatch> batch = ParseNpyRows(
      Npy(1, "<f4", "(2, 3)", Bytes<float>({1, 2, 3, 4, 5, 6.5f})), "a.npy");
  ASSERT_TRUE(batch.ok()) << batch.status();
  EXPECT_EQ(batch->rows, 2);
  EXPECT_EQ(batch->cols, 3);
  EXPECT_THAT(batch->values, ElementsAre(1, 2, 3, 4, 5, 6.5f));
}

TEST(NpyReaderTest, ConvertsFloat64AndReadsVersions2And3) {
  for (int major : {2, 3}) {
    absl::StatusOr<RowBatch> batch = ParseNpyRows(
        Npy(major, "<f8", "(1, 2)", Bytes<double>({0.25, -1e3})), "b.npy");
    ASSERT_TRUE(batch.ok()) << "version " << major << ": " << batch.status();
    EXPECT_EQ(batch->rows, 1);
    EXPECT_THAT(batch->values, ElementsAre(0.25f, -1000.0f));
  }
}

TEST(NpyReaderTest, OneDimensionalArrayIsOneRow) {
  absl::StatusOr<RowBatch> batch =
      ParseNpyRows(Npy(1, "<f4", "(4,)", Bytes<float>({1, 2, 3, 4})), "c.npy");
  ASSERT_TRUE(batch.ok()) << batch.status();
  EXPECT_EQ(batch->rows, 1);
  EXPECT_EQ(batch->cols, 4);
}

TEST(NpyReaderTest, AcceptsDoubleQuotedHeaderKeys) {
  std::string bytes = Npy(1, "<f4", "(1, 1)", Bytes<float>({7}));
  for (char& c : bytes) {
    if (c == '\'') c = '"';
  }
  absl::StatusOr<RowBatch> batch = ParseNpyRows(bytes, "d.npy");
  ASSERT_TRUE(batch.ok()) << batch.status();
  EXPECT_THAT(batch->values, ElementsAre(7.0f));
}

struct BadCase {
  std::string name;
  std::string bytes;
  std::string message;
};

TEST(NpyReaderTest, RejectsMalformedFilesWithClearErrors) {
  const std::string f4x2 = Bytes<float>({1, 2});
  std::string bad_version = Npy(1, "<f4", "(2,)", f4x2);
  bad_version[6] = 4;
  const std::string full = Npy(1, "<f4", "(2,)", f4x2);
  const std::vector<BadCase> cases = {
      {"magic", "PK\x03\x04 not numpy", "not a .npy file"},
      {"version", bad_version, "version 4.0 is not supported"},
      {"int dtype", Npy(1, "<i4", "(2,)", f4x2),
       "dtype '<i4' is not supported"},
      {"big endian", Npy(1, ">f4", "(2,)", f4x2), "expected '<f4'"},
      {"fortran", Npy(1, "<f4", "(1, 2)", f4x2, "True"), "Fortran order"},
      {"rank 3", Npy(1, "<f4", "(1, 1, 2)", f4x2), "has rank 3"},
      {"scalar", Npy(1, "<f4", "()", f4x2), "has rank 0"},
      {"empty", Npy(1, "<f4", "(0, 2)", ""), "is empty"},
      {"short data", Npy(1, "<f4", "(3,)", f4x2), "holds 8 bytes"},
      {"trailing data", Npy(1, "<f4", "(1,)", f4x2), "needs 4"},
      {"truncated header", full.substr(0, 20), "header declares"},
      {"bad dim", Npy(1, "<f4", "(2, x)", f4x2), "bad dimension 'x'"},
  };
  for (const BadCase& c : cases) {
    absl::StatusOr<RowBatch> batch = ParseNpyRows(c.bytes, "in.npy");
    ASSERT_FALSE(batch.ok()) << c.name;
    EXPECT_EQ(batch.status().code(), absl::StatusCode::kInvalidArgument)
        << c.name;
    EXPECT_THAT(batch.status().message(), HasSubstr("in.npy")) << c.name;
    EXPECT_THAT(batch.status().message(), HasSubstr(c.message)) << c.name;
  }
}

TEST(NpyReaderTest, MissingHeaderKeyIsNamed) {
  std::string bytes = Npy(1, "<f4", "(1,)", Bytes<float>({1}));
  const size_t at = bytes.find("'shape'");
  bytes.replace(at, 7, "'shope'");
  absl::StatusOr<RowBatch> batch = ParseNpyRows(bytes, "e.npy");
  ASSERT_FALSE(batch.ok());
  EXPECT_THAT(batch.status().message(), HasSubstr("no 'shape' entry"));
}

TEST(NpyReaderTest, LooksLikeNpyChecksTheMagic) {
  EXPECT_TRUE(LooksLikeNpy(Npy(1, "<f4", "(1,)", Bytes<float>({1}))));
  EXPECT_FALSE(LooksLikeNpy("1,2,3\n"));
  EXPECT_FALSE(LooksLikeNpy(""));
}

}  // namespace
}  // namespace nnserve
