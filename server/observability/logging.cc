#include "server/observability/logging.h"

#include <memory>

#include "absl/strings/str_cat.h"
#include "common/str_util.h"
#include "spdlog/sinks/stdout_sinks.h"
#include "spdlog/spdlog.h"

namespace nnserve::server {

absl::Status InitLogging(std::string_view level_name) {
  const spdlog::level::level_enum level =
      spdlog::level::from_str(std::string(level_name));
  // from_str maps unknown names to "off"; only accept "off" when asked.
  if (level == spdlog::level::off && level_name != "off") {
    return absl::InvalidArgumentError(
        absl::StrCat("log level '", Sv(level_name),
                     "' is not valid; expected one of trace, debug, info, "
                     "warn, error, critical, off"));
  }
  auto logger = std::make_shared<spdlog::logger>(
      "nnserve", std::make_shared<spdlog::sinks::stderr_sink_mt>());
  logger->set_pattern("ts=%Y-%m-%dT%H:%M:%S.%fZ level=%l %v",
                      spdlog::pattern_time_type::utc);
  logger->set_level(level);
  logger->flush_on(spdlog::level::info);
  spdlog::set_default_logger(std::move(logger));
  return absl::OkStatus();
}

std::string LogQuote(absl::string_view text) {
  std::string out = "\"";
  out.reserve(text.size() + 2);
  for (char c : text) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      default:
        out += c;
    }
  }
  out += '"';
  return out;
}

}  // namespace nnserve::server
