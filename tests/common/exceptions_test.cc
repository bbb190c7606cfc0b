#include "common/exceptions.h"

#include <new>
#include <stdexcept>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace nnserve {
namespace {

using ::testing::HasSubstr;

TEST(StatusFromExceptionTest, AllocationFailureIsResourceExhausted) {
  const absl::Status status =
      StatusFromException(std::bad_alloc(), "running model 'm' with 9 rows");
  EXPECT_EQ(status.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(status.message(),
            "out of memory while running model 'm' with 9 rows");
  // A subclass of bad_alloc is an allocation failure too.
  EXPECT_EQ(StatusFromException(std::bad_array_new_length(), "x").code(),
            absl::StatusCode::kResourceExhausted);
}

TEST(StatusFromExceptionTest, OtherExceptionsAreInternalWithTheirMessage) {
  const absl::Status status =
      StatusFromException(std::runtime_error("boom"), "loading model 'm'");
  EXPECT_EQ(status.code(), absl::StatusCode::kInternal);
  EXPECT_EQ(status.message(), "loading model 'm' failed: boom");
}

TEST(StatusFromExceptionTest, LongExceptionMessagesAreClipped) {
  const absl::Status status = StatusFromException(
      std::runtime_error(std::string(100000, 'x')), "decoding");
  EXPECT_LT(status.message().size(), 300u);
  EXPECT_THAT(status.message(), HasSubstr("(100000 bytes)"));
}

TEST(StatusFromExceptionTest, UnknownExceptionsAreInternal) {
  const absl::Status status = StatusFromUnknownException("handling Predict");
  EXPECT_EQ(status.code(), absl::StatusCode::kInternal);
  EXPECT_THAT(status.message(), HasSubstr("handling Predict failed"));
}

TEST(StatusOfCallTest, ReturnsTheStatusOfTheCallOrOfWhatItThrows) {
  EXPECT_TRUE(StatusOfCall("x", [] { return absl::OkStatus(); }).ok());
  EXPECT_EQ(StatusOfCall("x", [] { return absl::NotFoundError("gone"); }),
            absl::NotFoundError("gone"));
  EXPECT_EQ(StatusOfCall("handling Predict",
                         []() -> absl::Status { throw std::bad_alloc(); })
                .code(),
            absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(StatusOfCall(
                "handling Predict",
                []() -> absl::Status { throw std::out_of_range("index 7"); }),
            absl::InternalError("handling Predict failed: index 7"));
  EXPECT_EQ(StatusOfCall("x", []() -> absl::Status { throw 42; }).code(),
            absl::StatusCode::kInternal);
}

}  // namespace
}  // namespace nnserve
