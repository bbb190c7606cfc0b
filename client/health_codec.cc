#include "client/health_codec.h"

#include <cstdint>

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>
#include <google/protobuf/wire_format_lite.h>

#include "absl/strings/str_cat.h"

namespace nnserve {

using google::protobuf::internal::WireFormatLite;

std::string_view ServingStatusName(ServingStatus status) {
  switch (status) {
    case ServingStatus::kUnknown:
      return "UNKNOWN";
    case ServingStatus::kServing:
      return "SERVING";
    case ServingStatus::kNotServing:
      return "NOT_SERVING";
    case ServingStatus::kServiceUnknown:
      return "SERVICE_UNKNOWN";
  }
  return "UNKNOWN";
}

std::string EncodeHealthCheckRequest(std::string_view service) {
  std::string bytes;
  if (service.empty()) return bytes;  // proto3: default values are omitted.
  {
    google::protobuf::io::StringOutputStream stream(&bytes);
    google::protobuf::io::CodedOutputStream out(&stream);
    out.WriteTag(
        WireFormatLite::MakeTag(1, WireFormatLite::WIRETYPE_LENGTH_DELIMITED));
    out.WriteVarint32(static_cast<uint32_t>(service.size()));
    out.WriteRaw(service.data(), static_cast<int>(service.size()));
  }
  return bytes;
}

absl::StatusOr<ServingStatus> DecodeHealthCheckResponse(
    std::string_view bytes) {
  google::protobuf::io::CodedInputStream in(
      reinterpret_cast<const uint8_t*>(bytes.data()),
      static_cast<int>(bytes.size()));
  uint64_t status = 0;
  while (const uint32_t tag = in.ReadTag()) {
    if (tag == WireFormatLite::MakeTag(1, WireFormatLite::WIRETYPE_VARINT)) {
      if (!in.ReadVarint64(&status)) {
        return absl::DataLossError(
            "HealthCheckResponse: field 'status' is a truncated varint");
      }
    } else if (!WireFormatLite::SkipField(&in, tag)) {
      return absl::DataLossError(
          absl::StrCat("HealthCheckResponse: malformed field with tag ", tag));
    }
  }
  if (!in.ConsumedEntireMessage()) {
    return absl::DataLossError("HealthCheckResponse: malformed message");
  }
  if (status > 3) {
    return absl::DataLossError(
        absl::StrCat("HealthCheckResponse: status ", status,
                     " is not a known ServingStatus; expected 0..3"));
  }
  return static_cast<ServingStatus>(status);
}

}  // namespace nnserve
