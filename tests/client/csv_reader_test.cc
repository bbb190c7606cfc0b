// Tests for the CSV reader and the input dispatcher (client/input_readers.h).
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "client/input_readers.h"
#include "tests/client/subprocess.h"

namespace nnserve {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

TEST(CsvReaderTest, ParsesRowsIgnoringBlankCommentAndCrLf) {
  absl::StatusOr<RowBatch> batch = ParseCsvRows(
      "# header comment\r\n1, 2.5,-3\r\n\n  4e-1,+5,6  \n", "in.csv");
  ASSERT_TRUE(batch.ok()) << batch.status();
  EXPECT_EQ(batch->rows, 2);
  EXPECT_EQ(batch->cols, 3);
  EXPECT_THAT(batch->values, ElementsAre(1, 2.5f, -3, 0.4f, 5, 6));
}

TEST(CsvReaderTest, RaggedRowNamesLineAndCounts) {
  absl::StatusOr<RowBatch> batch = ParseCsvRows("1,2,3\n4,5\n", "in.csv");
  ASSERT_FALSE(batch.ok());
  EXPECT_EQ(batch.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(batch.status().message(),
              HasSubstr("in.csv:2: row has 2 values; expected 3"));
}

TEST(CsvReaderTest, BadNumberNamesLineColumnAndText) {
  for (const char* text :
       {"1,2\n3,abc\n", "1,2\n3,\n", "1,2\n3,nan\n", "1,2\n3,4x\n"}) {
    absl::StatusOr<RowBatch> batch = ParseCsvRows(text, "in.csv");
    ASSERT_FALSE(batch.ok()) << text;
    EXPECT_THAT(batch.status().message(), HasSubstr("in.csv:2: column 2"))
        << text;
    EXPECT_THAT(batch.status().message(), HasSubstr("expected a finite number"))
        << text;
  }
}

TEST(CsvReaderTest, EmptyInputIsAnError) {
  absl::StatusOr<RowBatch> batch = ParseCsvRows("\n# only a comment\n", "x");
  ASSERT_FALSE(batch.ok());
  EXPECT_THAT(batch.status().message(), HasSubstr("no rows found"));
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
  EXPECT_THAT(from_fake.status().message(), HasSubstr("not a .npy file"));

  std::istringstream csv_stream("5,6\n");
  absl::StatusOr<RowBatch> from_stream =
      ReadInputRowsFromStream(csv_stream, "<stdin>");
  ASSERT_TRUE(from_stream.ok()) << from_stream.status();
  EXPECT_THAT(from_stream->values, ElementsAre(5, 6));

  std::istringstream npy_stream(std::string("\x93NUMPY\x01\x00", 8));
  absl::StatusOr<RowBatch> from_npy_stream =
      ReadInputRowsFromStream(npy_stream, "<stdin>");
  ASSERT_FALSE(from_npy_stream.ok());
  EXPECT_THAT(from_npy_stream.status().message(), HasSubstr("<stdin>"));
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace nnserve
