#include "server/commands/input_reader.h"

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "formats/npy.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/util/model_builder.h"

namespace nnserve::server {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

// The CSV dialect itself is tested in tests/formats/csv_test.cc; here the
// command's dispatch: .npy by content, CSV otherwise, from stdin or a file.
TEST(ParseMatrixTest, CsvText) {
  auto m = ParseMatrix("# comment\n1, 2.5,-3\n\n4,5e-1 ,6\n", "stdin");
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->rows, 2);
  EXPECT_EQ(m->cols, 3);
  EXPECT_THAT(m->values, ElementsAre(1, 2.5, -3, 4, 0.5, 6));
}

TEST(ParseMatrixTest, NpyBytesOnStdin) {
  auto m = ParseMatrix(formats::SerializeNpy({2, 1}, std::vector<float>{1, 2}),
                       "stdin");
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->rows, 2);
  EXPECT_EQ(m->cols, 1);
}

TEST(ParseMatrixTest, ErrorsNameTheSourceLineAndColumn) {
  auto m = ParseMatrix("1,2,3\n4,abc,6\n", "stdin");
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(m.status().message()),
              HasSubstr("stdin: csv: line 2 column 2: 'abc' is not a number"));
}

class ReadMatrixFileTest : public ::testing::Test {
 protected:
  std::filesystem::path Write(const std::string& name,
                              const std::string& bytes) {
    const auto path = dir_.path() / name;
    std::ofstream(path, std::ios::binary) << bytes;
    return path;
  }
  nnserve::testing::ScopedTempDir dir_{"input_reader_test"};
};

TEST_F(ReadMatrixFileTest, ReadsTwoDimensionalNpy) {
  const std::vector<float> values = {1, 2, 3, 4, 5, 6};
  auto m =
      ReadMatrixFile(Write("x.npy", formats::SerializeNpy({3, 2}, values)));
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->rows, 3);
  EXPECT_EQ(m->cols, 2);
  EXPECT_EQ(m->values, values);
}

TEST_F(ReadMatrixFileTest, OneDimensionalNpyIsOneRow) {
  auto m = ReadMatrixFile(
      Write("x.npy", formats::SerializeNpy({3}, std::vector<float>{1, 2, 3})));
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->rows, 1);
  EXPECT_EQ(m->cols, 3);
}

TEST_F(ReadMatrixFileTest, ThreeDimensionalNpyIsRefused) {
  auto m = ReadMatrixFile(Write(
      "x.npy", formats::SerializeNpy({1, 1, 2}, std::vector<float>{1, 2})));
  ASSERT_FALSE(m.ok());
  EXPECT_THAT(std::string(m.status().message()),
              HasSubstr("shape [1, 1, 2] (rank 3); expected [rows, features]"));
}

TEST_F(ReadMatrixFileTest, OtherFilesAreReadAsCsv) {
  auto m = ReadMatrixFile(Write("x.csv", "1,2\n3,4\n"));
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->rows, 2);
}

TEST_F(ReadMatrixFileTest, MissingFileIsNotFound) {
  auto m = ReadMatrixFile(dir_.path() / "missing.npy");
  EXPECT_EQ(m.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(m.status().message()), HasSubstr("missing.npy"));
}

}  // namespace
}  // namespace nnserve::server
