// The grpc.health.v1 wire messages, encoded by hand so that the client needs
// no generated health stubs (a second copy of health.pb.cc linked into a
// binary that also has one would abort at start-up with a duplicate
// descriptor). HealthCheckRequest is {string service = 1}; the response is
// {ServingStatus status = 1}. Pure functions; thread-safe.
#ifndef NNSERVE_CLIENT_HEALTH_CODEC_H_
#define NNSERVE_CLIENT_HEALTH_CODEC_H_

#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace nnserve {

// grpc.health.v1.HealthCheckResponse.ServingStatus, same numbers.
enum class ServingStatus {
  kUnknown = 0,
  kServing = 1,
  kNotServing = 2,
  kServiceUnknown = 3,
};

// "UNKNOWN", "SERVING", "NOT_SERVING", "SERVICE_UNKNOWN".
std::string_view ServingStatusName(ServingStatus status);

// The full method name of grpc.health.v1.Health/Check.
inline constexpr std::string_view kHealthCheckMethod =
    "/grpc.health.v1.Health/Check";

// Serialized HealthCheckRequest{service}.
std::string EncodeHealthCheckRequest(std::string_view service);

// Parses a serialized HealthCheckResponse (unknown fields are skipped).
absl::StatusOr<ServingStatus> DecodeHealthCheckResponse(std::string_view bytes);

}  // namespace nnserve

#endif  // NNSERVE_CLIENT_HEALTH_CODEC_H_
