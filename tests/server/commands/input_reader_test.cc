#include "server/commands/input_reader.h"

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "engine/npy.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/util/model_builder.h"

namespace nnserve::server {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

TEST(ParseCsvMatrixTest, ParsesRowsSkippingBlankAndCommentLines) {
  auto m = ParseCsvMatrix("# header comment\n1, 2.5,-3\n\n4,5e-1 ,6\n", "in");
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->rows, 2);
  EXPECT_EQ(m->columns, 3);
  EXPECT_THAT(m->values, ElementsAre(1, 2.5, -3, 4, 0.5, 6));
}

TEST(ParseCsvMatrixTest, HandlesWindowsLineEndingsAndNoFinalNewline) {
  auto m = ParseCsvMatrix("1,2\r\n3,4", "in");
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_THAT(m->values, ElementsAre(1, 2, 3, 4));
}

TEST(ParseCsvMatrixTest, NonNumberNamesLineAndColumn) {
  auto m = ParseCsvMatrix("1,2,3\n4,abc,6\n", "stdin");
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(m.status().message()),
              HasSubstr("stdin line 2 column 2: 'abc' is not a number"));
}

TEST(ParseCsvMatrixTest, EmptyFieldIsNotANumber) {
  auto m = ParseCsvMatrix("1,,3\n", "x.csv");
  ASSERT_FALSE(m.ok());
  EXPECT_THAT(std::string(m.status().message()),
              HasSubstr("x.csv line 1 column 2: '' is not a number"));
}

TEST(ParseCsvMatrixTest, RaggedRowNamesBothLines) {
  auto m = ParseCsvMatrix("1,2,3\n\n4,5\n", "stdin");
  ASSERT_FALSE(m.ok());
  EXPECT_THAT(std::string(m.status().message()),
              HasSubstr("stdin line 3 has 2 values; expected 3 like line 1"));
}

TEST(ParseCsvMatrixTest, NoRowsIsAnError) {
  auto m = ParseCsvMatrix("\n# only a comment\n", "stdin");
  ASSERT_FALSE(m.ok());
  EXPECT_THAT(std::string(m.status().message()), HasSubstr("no rows"));
}

TEST(ParseCsvMatrixTest, OutOfRangeValueIsRefused) {
  auto m = ParseCsvMatrix("1e60\n", "stdin");
  ASSERT_FALSE(m.ok());
  EXPECT_THAT(std::string(m.status().message()),
              HasSubstr("out of the float32 range"));
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
  auto m = ReadMatrixFile(Write("x.npy", engine::SerializeNpy({3, 2}, values)));
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->rows, 3);
  EXPECT_EQ(m->columns, 2);
  EXPECT_EQ(m->values, values);
}

TEST_F(ReadMatrixFileTest, OneDimensionalNpyIsOneRow) {
  auto m = ReadMatrixFile(
      Write("x.npy", engine::SerializeNpy({3}, std::vector<float>{1, 2, 3})));
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->rows, 1);
  EXPECT_EQ(m->columns, 3);
}

TEST_F(ReadMatrixFileTest, ThreeDimensionalNpyIsRefused) {
  auto m = ReadMatrixFile(Write(
      "x.npy", engine::SerializeNpy({1, 1, 2}, std::vector<float>{1, 2})));
  ASSERT_FALSE(m.ok());
  EXPECT_THAT(std::string(m.status().message()),
              HasSubstr("shape [1, 1, 2]; expected [rows, features]"));
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
