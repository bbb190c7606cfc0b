// Tests for grpc::Status -> absl::Status conversion (client/status.h) and
// the hand-encoded health messages (client/health_codec.h).
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "client/health_codec.h"
#include "client/status.h"
#include "common/code_names.h"

namespace nnserve {
namespace {

using ::testing::HasSubstr;

TEST(StatusTest, OkStaysOk) {
  EXPECT_TRUE(client::FromGrpcStatus(grpc::Status::OK).ok());
}

TEST(StatusTest, EveryCodeKeepsItsNameAndMessage) {
  for (int code = 1; code <= 16; ++code) {
    const grpc::Status status(static_cast<grpc::StatusCode>(code),
                              "model 'x' not found");
    const absl::Status converted = client::FromGrpcStatus(status);
    EXPECT_EQ(static_cast<int>(converted.code()), code);
    EXPECT_EQ(converted.message(), "model 'x' not found");
    EXPECT_EQ(absl::StatusCodeToString(converted.code()), StatusCodeName(code));
  }
  EXPECT_EQ(
      client::FromGrpcStatus(grpc::Status(grpc::StatusCode::NOT_FOUND, "gone"))
          .ToString(),
      "NOT_FOUND: gone");
}

TEST(StatusTest, UnknownCodesBecomeUnknownWithTheNumber) {
  // 20 is no gRPC code but lies within grpc::StatusCode's range of values
  // (-32..31); casting a number outside it (such as 99) is undefined
  // behaviour, which UBSan reports (scripts/asan.sh).
  const absl::Status converted = client::FromGrpcStatus(
      grpc::Status(static_cast<grpc::StatusCode>(20), "odd"));
  EXPECT_EQ(converted.code(), absl::StatusCode::kUnknown);
  EXPECT_THAT(converted.message(), HasSubstr("gRPC status code 20: odd"));
}

TEST(HealthCodecTest, EncodesServiceAsField1) {
  EXPECT_EQ(EncodeHealthCheckRequest(""), "");
  EXPECT_EQ(EncodeHealthCheckRequest("ab"), std::string("\x0a\x02"
                                                        "ab",
                                                        4));
}

TEST(HealthCodecTest, DecodesStatusAndSkipsUnknownFields) {
  absl::StatusOr<ServingStatus> serving =
      DecodeHealthCheckResponse(std::string("\x08\x01", 2));
  ASSERT_TRUE(serving.ok()) << serving.status();
  EXPECT_EQ(*serving, ServingStatus::kServing);
  // Empty message = default value UNKNOWN.
  EXPECT_EQ(*DecodeHealthCheckResponse(""), ServingStatus::kUnknown);
  // Field 2 (length-delimited "zz") before status NOT_SERVING.
  absl::StatusOr<ServingStatus> with_extra =
      DecodeHealthCheckResponse(std::string("\x12\x02zz\x08\x02", 6));
  ASSERT_TRUE(with_extra.ok()) << with_extra.status();
  EXPECT_EQ(*with_extra, ServingStatus::kNotServing);
  EXPECT_EQ(ServingStatusName(*with_extra), "NOT_SERVING");
}

TEST(HealthCodecTest, RejectsMalformedResponses) {
  EXPECT_FALSE(DecodeHealthCheckResponse(std::string("\x08", 1)).ok());
  EXPECT_FALSE(DecodeHealthCheckResponse(std::string("\x12\x05zz", 4)).ok());
  EXPECT_THAT(
      DecodeHealthCheckResponse(std::string("\x08\x07", 2)).status().message(),
      HasSubstr("status 7 is not a known ServingStatus"));
}

}  // namespace
}  // namespace nnserve
