#include "server/http/rest_routes.h"

#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/str_util.h"

namespace nnserve::server {

namespace {

absl::Status UnknownPath(std::string_view path) {
  return absl::NotFoundError(
      absl::StrCat("no endpoint at '", Clip(path),
                   "'; expected /v2, /v2/health/live, /v2/health/ready or "
                   "/v2/models/<model>[/versions/<version>][/ready|/infer]"));
}

RestRoute Route(RestOperation operation, std::string_view method,
                std::string_view allowed) {
  RestRoute route;
  route.operation = operation;
  route.allowed_method = allowed;
  // HEAD asks what GET would answer, without the body.
  route.method_allowed =
      method == allowed || (allowed == "GET" && method == "HEAD");
  return route;
}

}  // namespace

absl::StatusOr<RestRoute> MatchRestRoute(std::string_view method,
                                         std::string_view path) {
  std::string_view trimmed = path;
  if (trimmed.size() > 1 && trimmed.back() == '/') trimmed.remove_suffix(1);
  std::vector<std::string_view> parts;
  for (size_t begin = 0;;) {
    const size_t end = trimmed.find('/', begin);
    parts.push_back(trimmed.substr(begin, end - begin));
    if (end == std::string_view::npos) break;
    begin = end + 1;
  }
  // A leading '/' gives an empty first part.
  if (parts.size() < 2 || !parts[0].empty() || parts[1] != "v2") {
    return UnknownPath(path);
  }
  parts.erase(parts.begin(), parts.begin() + 2);
  if (parts.empty())
    return Route(RestOperation::kServerMetadata, method, "GET");
  if (parts[0] == "health" && parts.size() == 2) {
    if (parts[1] == "live")
      return Route(RestOperation::kServerLive, method, "GET");
    if (parts[1] == "ready") {
      return Route(RestOperation::kServerReady, method, "GET");
    }
    return UnknownPath(path);
  }
  if (parts[0] == "repository") {
    if (parts.size() == 2 && parts[1] == "index") {
      return Route(RestOperation::kRepositoryIndex, method, "POST");
    }
    if (parts.size() == 4 && parts[1] == "models" && !parts[2].empty() &&
        (parts[3] == "load" || parts[3] == "unload")) {
      RestRoute route =
          Route(parts[3] == "load" ? RestOperation::kRepositoryLoad
                                   : RestOperation::kRepositoryUnload,
                method, "POST");
      route.model = std::string(parts[2]);
      return route;
    }
    return UnknownPath(path);
  }
  if (parts[0] != "models" || parts.size() < 2 || parts[1].empty()) {
    return UnknownPath(path);
  }
  const std::string_view model = parts[1];
  std::string_view version;
  size_t next = 2;
  if (parts.size() >= 4 && parts[2] == "versions") {
    version = parts[3];
    if (version.empty()) return UnknownPath(path);
    next = 4;
  }
  RestRoute route;
  if (parts.size() == next) {
    route = Route(RestOperation::kModelMetadata, method, "GET");
  } else if (parts.size() == next + 1 && parts[next] == "ready") {
    route = Route(RestOperation::kModelReady, method, "GET");
  } else if (parts.size() == next + 1 && parts[next] == "infer") {
    route = Route(RestOperation::kInfer, method, "POST");
  } else {
    return UnknownPath(path);
  }
  route.model = std::string(model);
  route.version = std::string(version);
  return route;
}

}  // namespace nnserve::server
