// Every request error of the nnserve API against the real binary: the gRPC
// code and a message that names what was wrong and what was expected.
// The server runs with --max-batch-rows=8 and --max-message-bytes=65536.
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/server/integration/integration_fixture.h"

namespace nnserve::testing {
namespace {

using engine::Activation;
using engine::WeightLayout;
using ::testing::AllOf;
using ::testing::HasSubstr;

constexpr int64_t kMaxBatchRows = 8;
constexpr int64_t kMaxMessageBytes = 65536;

// Repository: small (v1, v2: 4 → 3 RELU → 2 SOFTMAX), other (3 → 2), and
// huge_input (4096 → 2): one row of it is 16 KiB, eight rows 128 KiB — over
// the message limit while within the row limit.
class ErrorsIntegrationTest : public SharedServerTest<ErrorsIntegrationTest> {
 public:
  // Run by SharedServerTest::SetUpTestSuite.
  static void SetUpSharedSuite() {
    CreateRepository("nnserve_errors_itest");
    const std::vector<LayerDef> small = {LayerDef(3, Activation::kRelu),
                                         LayerDef(2, Activation::kSoftmax)};
    WriteModelDir(repo_->path(),
                  BuildRandomModel("small", 4, small, WeightLayout::kOutIn, 1),
                  1, FileFormat::kSafetensors, formats::DType::kF32);
    RandomModel small2 =
        BuildRandomModel("small", 4, small, WeightLayout::kOutIn, 2);
    small2.config.mutable_version_policy()->mutable_all();  // Serve 1 and 2.
    WriteModelDir(repo_->path(), small2, 2, FileFormat::kSafetensors,
                  formats::DType::kF32);
    WriteModelDir(
        repo_->path(),
        BuildRandomModel("other", 3, {LayerDef(2, Activation::kIdentity)},
                         WeightLayout::kInOut, 3),
        1, FileFormat::kNpy, formats::DType::kF32);
    WriteModelDir(repo_->path(),
                  BuildRandomModel("huge_input", 4096,
                                   {LayerDef(2, Activation::kIdentity)},
                                   WeightLayout::kOutIn, 4),
                  1, FileFormat::kSafetensors, formats::DType::kF32);
    StartSharedServer({absl::StrCat("--max-batch-rows=", kMaxBatchRows),
                       absl::StrCat("--max-message-bytes=", kMaxMessageBytes)});
  }

 protected:
  static const Client& client() { return *server_->client; }

  // A request for `model` with the given shape and `values` floats.
  static v1::PredictRequest Request(const std::string& model,
                                    std::vector<int64_t> shape,
                                    std::vector<float> values) {
    v1::PredictRequest request;
    request.set_model(model);
    for (int64_t d : shape) request.mutable_input()->add_shape(d);
    for (float v : values) request.mutable_input()->add_values(v);
    return request;
  }

  static std::string RawBytes(const std::vector<float>& values) {
    std::string raw(values.size() * sizeof(float), '\0');
    std::memcpy(raw.data(), values.data(), raw.size());
    return raw;
  }

  static absl::Status PredictStatus(const v1::PredictRequest& request) {
    return client().Predict(request).status();
  }
};

MATCHER_P2(IsStatus, code, message_matcher, "") {
  if (arg.code() != code) {
    *result_listener << "code is " << absl::StatusCodeToString(arg.code())
                     << " (message: " << arg.message() << ")";
    return false;
  }
  return ::testing::ExplainMatchResult(
      message_matcher, std::string(arg.message()), result_listener);
}

TEST_F(ErrorsIntegrationTest, UnknownModelIsNotFoundListingTheModels) {
  const absl::Status status =
      PredictStatus(Request("nope", {1, 4}, {0, 0, 0, 0}));
  EXPECT_THAT(status,
              IsStatus(absl::StatusCode::kNotFound,
                       AllOf(HasSubstr("nope"), HasSubstr("small"),
                             HasSubstr("other"), HasSubstr("huge_input"))));
  EXPECT_THAT(client().ModelInfo("nope").status(),
              IsStatus(absl::StatusCode::kNotFound,
                       AllOf(HasSubstr("nope"), HasSubstr("small"))));
}

TEST_F(ErrorsIntegrationTest, UnknownVersionIsNotFoundListingTheVersions) {
  v1::PredictRequest request = Request("small", {1, 4}, {0, 0, 0, 0});
  request.set_version(7);
  EXPECT_THAT(
      PredictStatus(request),
      IsStatus(absl::StatusCode::kNotFound,
               AllOf(HasSubstr("small"), HasSubstr("7"), HasSubstr("1, 2"))));
  EXPECT_THAT(client().ModelInfo("small", 7).status(),
              IsStatus(absl::StatusCode::kNotFound,
                       AllOf(HasSubstr("7"), HasSubstr("1, 2"))));
}

TEST_F(ErrorsIntegrationTest, WrongFeatureCountIsInvalidArgument) {
  // small expects 4 features per row; send 5.
  const absl::Status status =
      PredictStatus(Request("small", {2, 5}, std::vector<float>(10, 0.5f)));
  EXPECT_THAT(status, IsStatus(absl::StatusCode::kInvalidArgument,
                               AllOf(HasSubstr("5"), HasSubstr("4"),
                                     HasSubstr("feature"))));
  // A 1-D shape is one row of that many features.
  EXPECT_THAT(PredictStatus(Request("small", {3}, {1, 2, 3})),
              IsStatus(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("3"), HasSubstr("4"))));
}

TEST_F(ErrorsIntegrationTest, ShapeAndDataLengthMismatchIsInvalidArgument) {
  EXPECT_THAT(
      PredictStatus(Request("small", {2, 4}, std::vector<float>(7, 1.0f))),
      IsStatus(absl::StatusCode::kInvalidArgument,
               AllOf(HasSubstr("7"), HasSubstr("8"))));
  v1::PredictRequest raw = Request("small", {2, 4}, {});
  raw.mutable_input()->set_raw(std::string(30, '\0'));
  EXPECT_THAT(PredictStatus(raw),
              IsStatus(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("30"), HasSubstr("32"))));
}

TEST_F(ErrorsIntegrationTest, BadRankOrNegativeDimensionIsInvalidArgument) {
  EXPECT_THAT(
      PredictStatus(Request("small", {1, 2, 4}, std::vector<float>(8, 0))),
      IsStatus(absl::StatusCode::kInvalidArgument, HasSubstr("[1, 2, 4]")));
  EXPECT_THAT(PredictStatus(Request("small", {}, {1, 2, 3, 4})),
              IsStatus(absl::StatusCode::kInvalidArgument, HasSubstr("4")));
  EXPECT_THAT(PredictStatus(Request("small", {-1, 4}, {1, 2, 3, 4})),
              IsStatus(absl::StatusCode::kInvalidArgument, HasSubstr("-1")));
}

TEST_F(ErrorsIntegrationTest, EmptyBatchIsInvalidArgument) {
  EXPECT_THAT(PredictStatus(Request("small", {0, 4}, {})),
              IsStatus(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("[0, 4]"), HasSubstr("batch"))));
}

TEST_F(ErrorsIntegrationTest, BothOrNeitherDataFieldIsInvalidArgument) {
  v1::PredictRequest both = Request("small", {1, 4}, {1, 2, 3, 4});
  both.mutable_input()->set_raw(RawBytes({1, 2, 3, 4}));
  EXPECT_THAT(PredictStatus(both),
              IsStatus(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("values"), HasSubstr("raw"),
                             HasSubstr("both"))));
  EXPECT_THAT(PredictStatus(Request("small", {1, 4}, {})),
              IsStatus(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("values"), HasSubstr("raw"),
                             HasSubstr("neither"))));
}

TEST_F(ErrorsIntegrationTest, NonFiniteInputNamesRowAndColumn) {
  std::vector<float> values(12, 0.25f);
  values[1 * 4 + 2] = std::numeric_limits<float>::quiet_NaN();
  EXPECT_THAT(PredictStatus(Request("small", {3, 4}, values)),
              IsStatus(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("row 1"), HasSubstr("column 2"),
                             HasSubstr("NaN"))));
  // Inf, in the raw encoding.
  std::vector<float> inf(12, 0.25f);
  inf[2 * 4 + 3] = -std::numeric_limits<float>::infinity();
  v1::PredictRequest raw = Request("small", {3, 4}, {});
  raw.mutable_input()->set_raw(RawBytes(inf));
  EXPECT_THAT(PredictStatus(raw),
              IsStatus(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("row 2"), HasSubstr("column 3"),
                             HasSubstr("Inf"))));
}

// Permanent: clients retry RESOURCE_EXHAUSTED, and retrying this never helps.
TEST_F(ErrorsIntegrationTest, BatchOverTheRowLimitIsInvalidArgument) {
  const int64_t rows = kMaxBatchRows + 1;
  EXPECT_THAT(PredictStatus(Request("small", {rows, 4},
                                    std::vector<float>(rows * 4, 0.5f))),
              IsStatus(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("9"), HasSubstr("8"))));
  // Exactly at the limit is fine.
  EXPECT_TRUE(
      PredictStatus(Request("small", {kMaxBatchRows, 4},
                            std::vector<float>(kMaxBatchRows * 4, 0.5f)))
          .ok());
}

TEST_F(ErrorsIntegrationTest, MessageOverTheSizeLimitIsResourceExhausted) {
  // One row of 4096 floats (16 KiB) is under the 64 KiB limit...
  EXPECT_TRUE(PredictStatus(Request("huge_input", {1, 4096},
                                    std::vector<float>(4096, 0.125f)))
                  .ok());
  // ...eight rows (128 KiB) are over it, in either encoding.
  const int64_t rows = kMaxBatchRows;
  v1::PredictRequest big = Request("huge_input", {rows, 4096},
                                   std::vector<float>(rows * 4096, 0.125f));
  ASSERT_GT(big.ByteSizeLong(), static_cast<size_t>(kMaxMessageBytes));
  EXPECT_EQ(PredictStatus(big).code(), absl::StatusCode::kResourceExhausted);
  v1::PredictRequest raw = Request("huge_input", {rows, 4096}, {});
  raw.mutable_input()->set_raw(
      RawBytes(std::vector<float>(rows * 4096, 0.125f)));
  EXPECT_EQ(PredictStatus(raw).code(), absl::StatusCode::kResourceExhausted);
}

TEST_F(ErrorsIntegrationTest, PassedDeadlineIsDeadlineExceeded) {
  // gRPC deadlines have millisecond resolution: a deadline a few µs ahead
  // still lets a fast call through, so use one that has clearly passed.
  // (deadline_integration_test.cc covers a deadline passing on the server,
  // while the call waits in the inference queue.)
  v1::PredictRequest request = Request("small", {1, 4}, {1, 2, 3, 4});
  for (int i = 0; i < 3; ++i) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() -
                         std::chrono::seconds(1));
    v1::PredictResponse response;
    const grpc::Status status =
        client().stub().Predict(&context, request, &response);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED)
        << status.error_message();
  }
  // The server is unaffected.
  EXPECT_TRUE(client().Predict(request).ok());
}

}  // namespace
}  // namespace nnserve::testing
