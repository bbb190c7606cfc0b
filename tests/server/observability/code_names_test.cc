#include "server/observability/code_names.h"

#include <cctype>
#include <string>

#include "absl/status/status.h"
#include "gtest/gtest.h"

namespace nnserve::server {
namespace {

TEST(GrpcCodeNameTest, NamesMatchTheGrpcSpelling) {
  EXPECT_EQ(GrpcCodeName(grpc::StatusCode::OK), "OK");
  EXPECT_EQ(GrpcCodeName(grpc::StatusCode::INVALID_ARGUMENT),
            "INVALID_ARGUMENT");
  EXPECT_EQ(GrpcCodeName(grpc::StatusCode::NOT_FOUND), "NOT_FOUND");
  EXPECT_EQ(GrpcCodeName(grpc::StatusCode::RESOURCE_EXHAUSTED),
            "RESOURCE_EXHAUSTED");
  EXPECT_EQ(GrpcCodeName(grpc::StatusCode::DEADLINE_EXCEEDED),
            "DEADLINE_EXCEEDED");
  EXPECT_EQ(GrpcCodeName(grpc::StatusCode::UNAUTHENTICATED), "UNAUTHENTICATED");
  EXPECT_EQ(GrpcCodeName(static_cast<grpc::StatusCode>(99)), "UNKNOWN");
}

TEST(GrpcCodeNameTest, AgreesWithAbslNamesForEveryCode) {
  // absl spells codes in the same upper-case form, except OK.
  for (int code = 1; code <= 16; ++code) {
    const std::string absl_name =
        absl::StatusCodeToString(static_cast<absl::StatusCode>(code));
    std::string upper;
    for (char c : absl_name) {
      upper += c == ' ' ? '_' : static_cast<char>(std::toupper(c));
    }
    EXPECT_EQ(GrpcCodeName(static_cast<grpc::StatusCode>(code)), upper);
  }
}

}  // namespace
}  // namespace nnserve::server
