// Tests for formats/csv.h: the documented dialect (comments, blank lines,
// CRLF, BOM, '+', spaces), and one test per error (each asserting the
// message names the source, line, column and what was expected).
#include "formats/csv.h"

#include <cmath>
#include <limits>
#include <string>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace nnserve::formats {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

TEST(CsvTest, ParsesRowsSkippingBlankAndCommentLines) {
  auto m = ParseCsvMatrix(
      "# header comment\n1, 2.5,-3\n\n \t\n  # indented comment\n4,5e-1 ,6\n",
      "in.csv");
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->rows, 2);
  EXPECT_EQ(m->cols, 3);
  EXPECT_THAT(m->values, ElementsAre(1, 2.5f, -3, 4, 0.5f, 6));
}

TEST(CsvTest, CrLfNoFinalNewlineTabsPlusAndByteOrderMark) {
  auto m = ParseCsvMatrix("\xEF\xBB\xBF+1,\t.5\r\n-0,3.\r\n4e1,+5e-1", "in");
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->rows, 3);
  EXPECT_EQ(m->cols, 2);
  EXPECT_THAT(m->values, ElementsAre(1, 0.5f, 0, 3, 40, 0.5f));
  EXPECT_TRUE(std::signbit(m->values[2]));
}

TEST(CsvTest, OneColumnAndOneValue) {
  auto m = ParseCsvMatrix("7\n8\n", "in");
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->rows, 2);
  EXPECT_EQ(m->cols, 1);
  auto one = ParseCsvMatrix("42", "in");
  ASSERT_TRUE(one.ok()) << one.status();
  EXPECT_THAT(one->values, ElementsAre(42));
}

TEST(CsvTest, NonNumbersNameLineColumnAndText) {
  for (const char* text :
       {"1,2\n3,abc\n", "1,2\n3,4x\n", "1,2\n3,0x1p3\n", "1,2\n3,+-1\n",
        "1,2\n3,\"4\"\n", "1,2\n3,1 2\n", "1,2\n3,+\n", "1,2\n3,--1\n"}) {
    auto m = ParseCsvMatrix(text, "in.csv");
    ASSERT_FALSE(m.ok()) << text;
    EXPECT_EQ(m.status().code(), absl::StatusCode::kInvalidArgument) << text;
    EXPECT_THAT(m.status().message(), HasSubstr("in.csv: csv: line 2 column 2"))
        << text;
    EXPECT_THAT(m.status().message(), HasSubstr("is not a number; expected"))
        << text;
  }
}

TEST(CsvTest, EmptyValueIsNamed) {
  for (const char* text : {"1,,3\n", "1,2,\n", ",1,2\n"}) {
    auto m = ParseCsvMatrix(text, "x.csv");
    ASSERT_FALSE(m.ok()) << text;
    EXPECT_THAT(m.status().message(), HasSubstr("x.csv: csv: line 1 column"))
        << text;
    EXPECT_THAT(m.status().message(), HasSubstr("empty value")) << text;
  }
}

TEST(CsvTest, HeaderLineIsANonNumberOnLineOne) {
  auto m = ParseCsvMatrix("a,b\n1,2\n", "in.csv");
  ASSERT_FALSE(m.ok());
  EXPECT_THAT(m.status().message(),
              HasSubstr("in.csv: csv: line 1 column 1: 'a' is not a number"));
}

// The server and the engine refuse non-finite inputs; the CSV reader does so
// with the line and column.
TEST(CsvTest, NanAndInfinityAreRefused) {
  for (const char* value :
       {"nan", "NaN", "-nan", "inf", "-inf", "infinity", "+inf", "nan(0x1)"}) {
    auto m = ParseCsvMatrix(std::string("1,") + value + "\n", "in.csv");
    ASSERT_FALSE(m.ok()) << value;
    EXPECT_THAT(m.status().message(), HasSubstr("line 1 column 2")) << value;
    EXPECT_THAT(m.status().message(), HasSubstr("is not finite")) << value;
  }
}

TEST(CsvTest, OverflowIsRefusedUnderflowRounds) {
  for (const char* value : {"1e39", "-3.5e38", "1e400", "1e99999"}) {
    auto m = ParseCsvMatrix(value, "in");
    ASSERT_FALSE(m.ok()) << value;
    EXPECT_THAT(m.status().message(), HasSubstr("outside the float32 range"))
        << value;
  }
  auto m = ParseCsvMatrix("1e-40,1e-60,-1e-400,3.4028234e38", "in");
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_FLOAT_EQ(m->values[0], 1e-40f);  // Subnormal.
  EXPECT_EQ(m->values[1], 0.0f);
  EXPECT_EQ(m->values[2], 0.0f);
  EXPECT_TRUE(std::signbit(m->values[2]));
  EXPECT_EQ(m->values[3], std::numeric_limits<float>::max());
}

TEST(CsvTest, RaggedRowsNameBothLines) {
  auto fewer = ParseCsvMatrix("# c\n1,2,3\n\n4,5\n", "stdin");
  ASSERT_FALSE(fewer.ok());
  EXPECT_THAT(fewer.status().message(),
              HasSubstr("stdin: csv: line 4 has 2 values; expected 3 like "
                        "line 2"));
  auto more = ParseCsvMatrix("1,2\n3,4,5\n", "stdin");
  ASSERT_FALSE(more.ok());
  EXPECT_THAT(more.status().message(),
              HasSubstr("line 2 has more than 2 values; expected 2 like line "
                        "1"));
}

TEST(CsvTest, EmptyInputIsAnError) {
  for (const char* text :
       {"", "\n", "\n# only a comment\n", "  \r\n", "\xEF\xBB\xBF"}) {
    auto m = ParseCsvMatrix(text, "stdin");
    ASSERT_FALSE(m.ok()) << text;
    EXPECT_EQ(m.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(m.status().message(), HasSubstr("stdin: csv: no rows found"));
  }
}

TEST(CsvTest, LongFieldIsClippedInTheMessage) {
  const std::string field(100000, 'x');
  auto m = ParseCsvMatrix("1," + field + "\n", "in");
  ASSERT_FALSE(m.ok());
  EXPECT_LT(m.status().message().size(), 400u);
  EXPECT_THAT(m.status().message(), HasSubstr("(100000 bytes)"));
}

TEST(CsvTest, BinaryGarbageIsANonNumber) {
  auto m = ParseCsvMatrix(std::string("\x00\x01,2", 4), "in");
  ASSERT_FALSE(m.ok());
  EXPECT_THAT(m.status().message(), HasSubstr("line 1 column 1"));
}

}  // namespace
}  // namespace nnserve::formats
