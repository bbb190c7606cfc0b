// The Open Inference Protocol's REST paths: which operation a method and a
// path name, and the model and version in the path.
//
//   GET  /v2/health/live | /v2/health/ready | /v2
//   GET  /v2/models/{m}[/versions/{v}]        (model metadata)
//   GET  /v2/models/{m}[/versions/{v}]/ready
//   POST /v2/models/{m}[/versions/{v}]/infer
//   POST /v2/repository/index                  (model repository extension)
//   POST /v2/repository/models/{m}/load | /unload
//
// A trailing slash is ignored. Stateless; thread-safe.
#ifndef NNSERVE_SERVER_HTTP_REST_ROUTES_H_
#define NNSERVE_SERVER_HTTP_REST_ROUTES_H_

#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace nnserve::server {

enum class RestOperation {
  kServerLive,
  kServerReady,
  kServerMetadata,
  kModelMetadata,
  kModelReady,
  kInfer,
  kRepositoryIndex,
  kRepositoryLoad,
  kRepositoryUnload,
};

struct RestRoute {
  RestOperation operation = RestOperation::kServerLive;
  std::string model;    // Model operations only.
  std::string version;  // "" = the newest served version.
  // The method the operation takes ("GET" or "POST"); when the request's
  // differs, the answer is 405 with this in the Allow header.
  std::string_view allowed_method;
  bool method_allowed = true;
};

// The route for `method` and `path` (already URL-decoded, without the query
// string); NOT_FOUND naming the path for anything else.
absl::StatusOr<RestRoute> MatchRestRoute(std::string_view method,
                                         std::string_view path);

}  // namespace nnserve::server

#endif  // NNSERVE_SERVER_HTTP_REST_ROUTES_H_
