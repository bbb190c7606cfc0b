// The response half of oip_json.h: inference responses, metadata and
// error bodies. (oip_json.cc parses requests.)
#include "server/http/oip_json.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "nlohmann/json.hpp"

namespace nnserve::server {

namespace {

using nlohmann::json;

std::string JsonString(std::string_view text) {
  return json(std::string(text))
      .dump(-1, ' ', false, json::error_handler_t::replace);
}

void AppendFloat(float value, std::string* out) {
  if (!std::isfinite(value)) {
    out->append("null");
    return;
  }
  char buffer[32];
  auto [end, error] = std::to_chars(buffer, buffer + sizeof buffer, value);
  out->append(buffer, end);
}

// An output's elements as JSON: FP32 numbers or BYTES strings.
void AppendData(const inference::ModelInferResponse::InferOutputTensor& tensor,
                std::string_view raw, bool has_raw, std::string* out) {
  out->push_back('[');
  bool first = true;
  const auto separator = [&] {
    if (!first) out->push_back(',');
    first = false;
  };
  if (tensor.datatype() == "BYTES") {
    if (has_raw) {
      while (raw.size() >= 4) {
        uint32_t length = 0;
        std::memcpy(&length, raw.data(), 4);
        raw.remove_prefix(4);
        length = std::min<uint32_t>(length, raw.size());
        separator();
        out->append(JsonString(raw.substr(0, length)));
        raw.remove_prefix(length);
      }
    } else {
      for (const std::string& element : tensor.contents().bytes_contents()) {
        separator();
        out->append(JsonString(element));
      }
    }
  } else if (has_raw) {
    for (size_t i = 0; i + 4 <= raw.size(); i += 4) {
      float value;
      std::memcpy(&value, raw.data() + i, 4);
      separator();
      AppendFloat(value, out);
    }
  } else {
    for (float value : tensor.contents().fp32_contents()) {
      separator();
      AppendFloat(value, out);
    }
  }
  out->push_back(']');
}

}  // namespace

HttpInferResponse FormatInferResponse(
    const inference::ModelInferResponse& response,
    const HttpInferRequest& request) {
  HttpInferResponse out;
  std::string& body = out.body;
  std::string binary;
  absl::StrAppend(&body, "{\"model_name\":", JsonString(response.model_name()),
                  ",\"model_version\":", JsonString(response.model_version()),
                  ",\"id\":", JsonString(response.id()), ",\"outputs\":[");
  const bool has_raw = response.raw_output_contents_size() > 0;
  for (int i = 0; i < response.outputs_size(); ++i) {
    const auto& tensor = response.outputs(i);
    const std::string_view raw =
        has_raw && i < response.raw_output_contents_size()
            ? std::string_view(response.raw_output_contents(i))
            : std::string_view();
    absl::StrAppend(&body, i == 0 ? "" : ",",
                    "{\"name\":", JsonString(tensor.name()),
                    ",\"datatype\":", JsonString(tensor.datatype()),
                    ",\"shape\":[", absl::StrJoin(tensor.shape(), ","), "]");
    const bool as_binary =
        has_raw &&
        (request.all_outputs_binary ||
         std::find(request.binary_outputs.begin(), request.binary_outputs.end(),
                   tensor.name()) != request.binary_outputs.end());
    if (as_binary) {
      absl::StrAppend(
          &body, ",\"parameters\":{\"binary_data_size\":", raw.size(), "}}");
      binary.append(raw);
    } else {
      body.append(",\"data\":");
      AppendData(tensor, raw, has_raw, &body);
      body.push_back('}');
    }
  }
  body.append("]}");
  out.json_size = body.size();
  body.append(binary);
  return out;
}

std::string ModelMetadataJson(
    const inference::ModelMetadataResponse& response) {
  const auto tensors = [](const auto& list) {
    nlohmann::ordered_json array = nlohmann::ordered_json::array();
    for (const auto& tensor : list) {
      array.push_back({{"name", tensor.name()},
                       {"datatype", tensor.datatype()},
                       {"shape", std::vector<int64_t>(tensor.shape().begin(),
                                                      tensor.shape().end())}});
    }
    return array;
  };
  nlohmann::ordered_json body = {
      {"name", response.name()},
      {"versions", std::vector<std::string>(response.versions().begin(),
                                            response.versions().end())},
      {"platform", response.platform()},
      {"inputs", tensors(response.inputs())},
      {"outputs", tensors(response.outputs())}};
  return body.dump(-1, ' ', false,
                   nlohmann::ordered_json::error_handler_t::replace);
}

std::string ServerMetadataJson(
    const inference::ServerMetadataResponse& response) {
  nlohmann::ordered_json body = {
      {"name", response.name()},
      {"version", response.version()},
      {"extensions", std::vector<std::string>(response.extensions().begin(),
                                              response.extensions().end())}};
  return body.dump(-1, ' ', false,
                   nlohmann::ordered_json::error_handler_t::replace);
}

std::string ModelReadyJson(std::string_view name, bool ready) {
  return absl::StrCat("{\"name\":", JsonString(name),
                      ",\"ready\":", ready ? "true" : "false", "}");
}

std::string BoolJson(std::string_view key, bool value) {
  return absl::StrCat("{", JsonString(key), ":", value ? "true" : "false", "}");
}

std::string ErrorJson(std::string_view message) {
  return absl::StrCat("{\"error\":", JsonString(message), "}");
}

}  // namespace nnserve::server
