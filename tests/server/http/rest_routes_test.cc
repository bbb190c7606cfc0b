// Tests of the REST path table (server/http/rest_routes.h) and of the one
// absl -> HTTP status mapping (server/http/http_status.h).
#include "server/http/rest_routes.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/http/http_status.h"

namespace nnserve::server {
namespace {

using ::testing::HasSubstr;

TEST(RestRoutesTest, EveryStandardPath) {
  struct Case {
    const char* method;
    const char* path;
    RestOperation operation;
    const char* model;
    const char* version;
  };
  const Case cases[] = {
      {"GET", "/v2", RestOperation::kServerMetadata, "", ""},
      {"GET", "/v2/", RestOperation::kServerMetadata, "", ""},
      {"GET", "/v2/health/live", RestOperation::kServerLive, "", ""},
      {"GET", "/v2/health/ready", RestOperation::kServerReady, "", ""},
      {"GET", "/v2/models/digits", RestOperation::kModelMetadata, "digits", ""},
      {"GET", "/v2/models/digits/versions/3", RestOperation::kModelMetadata,
       "digits", "3"},
      {"GET", "/v2/models/digits/ready", RestOperation::kModelReady, "digits",
       ""},
      {"GET", "/v2/models/digits/versions/3/ready", RestOperation::kModelReady,
       "digits", "3"},
      {"POST", "/v2/models/digits/infer", RestOperation::kInfer, "digits", ""},
      {"POST", "/v2/models/digits/versions/12/infer/", RestOperation::kInfer,
       "digits", "12"},
      {"HEAD", "/v2/health/ready", RestOperation::kServerReady, "", ""},
      {"POST", "/v2/repository/index", RestOperation::kRepositoryIndex, "", ""},
      {"POST", "/v2/repository/models/digits/load",
       RestOperation::kRepositoryLoad, "digits", ""},
      {"POST", "/v2/repository/models/digits/unload",
       RestOperation::kRepositoryUnload, "digits", ""},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.path);
    absl::StatusOr<RestRoute> route = MatchRestRoute(c.method, c.path);
    ASSERT_TRUE(route.ok()) << route.status();
    EXPECT_EQ(route->operation, c.operation);
    EXPECT_EQ(route->model, c.model);
    EXPECT_EQ(route->version, c.version);
    EXPECT_TRUE(route->method_allowed);
  }
}

TEST(RestRoutesTest, WrongMethodNamesTheAllowedOne) {
  absl::StatusOr<RestRoute> get_infer =
      MatchRestRoute("GET", "/v2/models/digits/infer");
  ASSERT_TRUE(get_infer.ok());
  EXPECT_FALSE(get_infer->method_allowed);
  EXPECT_EQ(get_infer->allowed_method, "POST");
  absl::StatusOr<RestRoute> post_ready =
      MatchRestRoute("POST", "/v2/health/ready");
  ASSERT_TRUE(post_ready.ok());
  EXPECT_FALSE(post_ready->method_allowed);
  EXPECT_EQ(post_ready->allowed_method, "GET");
}

TEST(RestRoutesTest, UnknownPathsAreNotFound) {
  for (const char* path :
       {"/", "/v1", "/v2x", "/v2/health", "/v2/health/alive", "/v2/models",
        "/v2/models/", "/v2/models/digits/versions", "/v2/models/digits/x",
        "/v2/models/digits/versions//infer", "/v2/models/d/infer/more",
        "/v2/repository", "/v2/repository/models/d",
        "/v2/repository/models//load", "/v2/repository/models/d/reload",
        "/metrics"}) {
    SCOPED_TRACE(path);
    absl::StatusOr<RestRoute> route = MatchRestRoute("GET", path);
    ASSERT_FALSE(route.ok());
    EXPECT_EQ(route.status().code(), absl::StatusCode::kNotFound);
    EXPECT_THAT(route.status().message(), HasSubstr("no endpoint at"));
  }
}

TEST(HttpStatusTest, CanonicalCodesMapAsGrpcGatewayDoes) {
  EXPECT_EQ(HttpStatusCode(absl::StatusCode::kOk), 200);
  EXPECT_EQ(HttpStatusCode(absl::StatusCode::kInvalidArgument), 400);
  EXPECT_EQ(HttpStatusCode(absl::StatusCode::kFailedPrecondition), 400);
  EXPECT_EQ(HttpStatusCode(absl::StatusCode::kNotFound), 404);
  EXPECT_EQ(HttpStatusCode(absl::StatusCode::kResourceExhausted), 429);
  EXPECT_EQ(HttpStatusCode(absl::StatusCode::kUnavailable), 503);
  EXPECT_EQ(HttpStatusCode(absl::StatusCode::kDeadlineExceeded), 504);
  EXPECT_EQ(HttpStatusCode(absl::StatusCode::kUnimplemented), 501);
  EXPECT_EQ(HttpStatusCode(absl::StatusCode::kInternal), 500);
  EXPECT_EQ(HttpStatusCode(absl::StatusCode::kDataLoss), 500);
  EXPECT_EQ(HttpStatusCode(static_cast<absl::StatusCode>(99)), 500);
}

}  // namespace
}  // namespace nnserve::server
