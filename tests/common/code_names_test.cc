#include "common/code_names.h"

#include <cctype>
#include <string>

#include "absl/status/status.h"
#include "gtest/gtest.h"

namespace nnserve {
namespace {

TEST(StatusCodeNameTest, NamesMatchTheGrpcSpelling) {
  EXPECT_EQ(StatusCodeName(0), "OK");
  EXPECT_EQ(StatusCodeName(3), "INVALID_ARGUMENT");
  EXPECT_EQ(StatusCodeName(5), "NOT_FOUND");
  EXPECT_EQ(StatusCodeName(8), "RESOURCE_EXHAUSTED");
  EXPECT_EQ(StatusCodeName(4), "DEADLINE_EXCEEDED");
  EXPECT_EQ(StatusCodeName(16), "UNAUTHENTICATED");
}

TEST(StatusCodeNameTest, NumbersOutsideTheRangeKeepTheirNumber) {
  EXPECT_EQ(StatusCodeName(17), "CODE_17");
  EXPECT_EQ(StatusCodeName(99), "CODE_99");
  EXPECT_EQ(StatusCodeName(-1), "CODE_-1");
}

TEST(StatusCodeNameTest, AgreesWithAbslNamesForEveryCode) {
  // absl spells codes in the same upper-case form, except OK.
  for (int code = 1; code <= 16; ++code) {
    const std::string absl_name =
        absl::StatusCodeToString(static_cast<absl::StatusCode>(code));
    std::string upper;
    for (char c : absl_name) {
      upper += c == ' ' ? '_' : static_cast<char>(std::toupper(c));
    }
    EXPECT_EQ(StatusCodeName(code), upper);
  }
}

}  // namespace
}  // namespace nnserve
