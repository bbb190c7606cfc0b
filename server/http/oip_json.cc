#include "server/http/oip_json.h"

#include <algorithm>
#include <bit>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/str_util.h"
#include "formats/half.h"
#include "nlohmann/json.hpp"

namespace nnserve::server {

namespace {

static_assert(std::endian::native == std::endian::little,
              "raw tensor bytes are little-endian");

using nlohmann::json;

absl::Status Invalid(std::string_view path, std::string_view problem) {
  return absl::InvalidArgumentError(absl::StrCat(Sv(path), " ", Sv(problem)));
}

// "a number", "an array", ... for messages.
std::string TypeOf(const json& value) {
  if (value.is_number()) return "a number";
  if (value.is_array() || value.is_object()) {
    return absl::StrCat("an ", value.type_name());
  }
  if (value.is_null()) return "null";
  return absl::StrCat("a ", value.type_name());
}

// `value` for messages: a scalar as written (clipped), an array or object
// by its type only (dumping one recurses once per nesting level, and a body
// nested deep enough overflows the stack).
std::string Describe(const json& value) {
  if (value.is_structured()) return TypeOf(value);
  return Clip(value.dump());
}

// The most dimensions a shape may have. Nested data is read recursively, a
// level per dimension, so this bounds the stack a request can take.
constexpr size_t kMaxRank = 32;

// `object[key]` as a string; absent -> `fallback` when given, else an error.
absl::StatusOr<std::string> StringField(const json& object,
                                        std::string_view path, const char* key,
                                        const char* fallback = nullptr) {
  auto it = object.find(key);
  if (it == object.end()) {
    if (fallback != nullptr) return std::string(fallback);
    return Invalid(absl::StrCat(Sv(path), ".", key), "is missing");
  }
  if (!it->is_string()) {
    return Invalid(absl::StrCat(Sv(path), ".", key),
                   absl::StrCat("is ", TypeOf(*it), "; expected a string"));
  }
  return it->get<std::string>();
}

// The element count `shape` describes, or nullopt past int64.
std::optional<int64_t> ElementCount(std::span<const int64_t> shape) {
  int64_t count = 1;
  for (int64_t dim : shape) {
    if (dim != 0 && count > std::numeric_limits<int64_t>::max() / dim) {
      return std::nullopt;
    }
    count *= dim;
  }
  return count;
}

// The numbers of `data` in row-major order: flat, or nested to match
// `shape` exactly.
class DataReader {
 public:
  DataReader(std::string path, std::span<const int64_t> shape,
             std::vector<double>* out)
      : path_(std::move(path)), shape_(shape), out_(out) {}

  absl::Status Read(const json& data) {
    if (!data.is_array()) {
      return Invalid(path_, absl::StrCat("is ", TypeOf(data),
                                         "; expected an array of numbers, flat "
                                         "or nested to match the shape"));
    }
    if (!data.empty() && data.front().is_array()) return Nested(data, 0);
    const std::optional<int64_t> count = ElementCount(shape_);
    if (!count.has_value() || *count != static_cast<int64_t>(data.size())) {
      return Invalid(
          path_,
          absl::StrCat("has ", data.size(), " values; shape [",
                       absl::StrJoin(shape_, ", "), "] needs ", Count(count)));
    }
    out_->reserve(data.size());
    for (size_t i = 0; i < data.size(); ++i) {
      absl::Status status = Number(data[i], {i});
      if (!status.ok()) return status;
    }
    return absl::OkStatus();
  }

 private:
  static std::string Count(std::optional<int64_t> count) {
    return count.has_value() ? absl::StrCat(*count) : "more than 2^63";
  }

  std::string PathOf(const std::vector<size_t>& index) const {
    std::string path = path_;
    for (size_t i : index) absl::StrAppend(&path, "[", i, "]");
    return path;
  }

  absl::Status Number(const json& value, const std::vector<size_t>& index) {
    if (!value.is_number()) {
      return Invalid(PathOf(index),
                     absl::StrCat("is ", TypeOf(value), "; expected a number"));
    }
    out_->push_back(value.get<double>());
    return absl::OkStatus();
  }

  absl::Status Nested(const json& array, size_t depth) {
    if (depth >= shape_.size()) {
      return Invalid(PathOf(index_),
                     absl::StrCat("is nested ", depth + 1, " deep; shape [",
                                  absl::StrJoin(shape_, ", "), "] has rank ",
                                  shape_.size()));
    }
    if (static_cast<int64_t>(array.size()) != shape_[depth]) {
      return Invalid(PathOf(index_),
                     absl::StrCat("has ", array.size(), " elements; shape [",
                                  absl::StrJoin(shape_, ", "), "] needs ",
                                  shape_[depth], " at depth ", depth));
    }
    const bool leaves = depth + 1 == shape_.size();
    for (size_t i = 0; i < array.size(); ++i) {
      index_.push_back(i);
      const json& element = array[i];
      absl::Status status;
      if (leaves) {
        status = Number(element, index_);
      } else if (!element.is_array()) {
        status = Invalid(PathOf(index_),
                         absl::StrCat("is ", TypeOf(element),
                                      "; expected an array (the shape has "
                                      "rank ",
                                      shape_.size(), ")"));
      } else {
        status = Nested(element, depth + 1);
      }
      if (!status.ok()) return status;
      index_.pop_back();
    }
    return absl::OkStatus();
  }

  const std::string path_;
  const std::span<const int64_t> shape_;
  std::vector<double>* const out_;
  std::vector<size_t> index_;
};

template <typename T>
void AppendBytes(T value, std::string* out) {
  char bytes[sizeof(T)];
  std::memcpy(bytes, &value, sizeof(T));
  out->append(bytes, sizeof(T));
}

// `values` as the little-endian bytes of `datatype` (FP32, FP64, FP16 or
// BF16), or INVALID_ARGUMENT for a finite value beyond the datatype's range
// (it would arrive as infinity).
absl::Status EncodeNumbers(std::string_view path, std::string_view datatype,
                           const std::vector<double>& values,
                           std::string* out) {
  const auto beyond = [&](size_t i, std::string_view largest) {
    return Invalid(
        path, absl::StrCat("element ", i, " is ", values[i], ", beyond the ",
                           Sv(datatype), " range (largest finite ", Sv(largest),
                           ")"));
  };
  if (datatype == "FP64") {
    out->reserve(values.size() * 8);
    for (double v : values) AppendBytes(v, out);
    return absl::OkStatus();
  }
  out->reserve(values.size() * (datatype == "FP32" ? 4 : 2));
  for (size_t i = 0; i < values.size(); ++i) {
    const float v = static_cast<float>(values[i]);
    if (datatype == "FP32") {
      if (std::isinf(v)) return beyond(i, "3.4028235e38");
      AppendBytes(v, out);
    } else if (datatype == "FP16") {
      const uint16_t bits = formats::FloatToHalfBits(v);
      if (std::isinf(formats::HalfToFloat(bits))) return beyond(i, "65504");
      AppendBytes(bits, out);
    } else {
      const uint16_t bits = formats::FloatToBf16Bits(v);
      if (std::isinf(formats::Bf16ToFloat(bits))) {
        return beyond(i, "3.3895314e38");
      }
      AppendBytes(bits, out);
    }
  }
  return absl::OkStatus();
}

// Parameters the server does not act on are accepted and ignored, as the
// protocol allows; these are the ones it reads.
absl::StatusOr<bool> BoolParameter(const json& parameters,
                                   std::string_view path, const char* key) {
  auto it = parameters.find(key);
  if (it == parameters.end()) return false;
  if (!it->is_boolean()) {
    return Invalid(absl::StrCat(Sv(path), ".", key),
                   absl::StrCat("is ", TypeOf(*it), "; expected a boolean"));
  }
  return it->get<bool>();
}

absl::StatusOr<const json*> ParametersOf(const json& object,
                                         std::string_view path) {
  static const json kNone = json::object();
  auto it = object.find("parameters");
  if (it == object.end()) return &kNone;
  if (!it->is_object()) {
    return Invalid(absl::StrCat(Sv(path), ".parameters"),
                   absl::StrCat("is ", TypeOf(*it), "; expected an object"));
  }
  return &*it;
}

// Reads inputs[i] into `tensor` (its shape and datatype) and its data into
// `raw`, from JSON or from the binary section at `*binary`.
absl::Status ReadInput(const json& input, const std::string& path,
                       std::string_view* binary,
                       inference::ModelInferRequest::InferInputTensor* tensor,
                       std::string* raw) {
  if (!input.is_object()) {
    return Invalid(path,
                   absl::StrCat("is ", TypeOf(input), "; expected an object"));
  }
  absl::StatusOr<std::string> name = StringField(input, path, "name");
  if (!name.ok()) return name.status();
  absl::StatusOr<std::string> datatype = StringField(input, path, "datatype");
  if (!datatype.ok()) return datatype.status();
  tensor->set_name(*std::move(name));
  tensor->set_datatype(*datatype);

  auto shape = input.find("shape");
  if (shape == input.end() || !shape->is_array()) {
    return Invalid(absl::StrCat(path, ".shape"),
                   shape == input.end()
                       ? "is missing"
                       : absl::StrCat("is ", TypeOf(*shape),
                                      "; expected an array of integers"));
  }
  if (shape->size() > kMaxRank) {
    return Invalid(absl::StrCat(path, ".shape"),
                   absl::StrCat("has ", shape->size(),
                                " dimensions; expected at most ", kMaxRank));
  }
  for (size_t d = 0; d < shape->size(); ++d) {
    const json& dim = (*shape)[d];
    if (!dim.is_number_integer() || dim.get<int64_t>() < 0) {
      return Invalid(absl::StrCat(path, ".shape[", d, "]"),
                     absl::StrCat("is ", Describe(dim),
                                  "; expected a non-negative integer"));
    }
    tensor->add_shape(dim.get<int64_t>());
  }

  absl::StatusOr<const json*> parameters = ParametersOf(input, path);
  if (!parameters.ok()) return parameters.status();
  auto binary_size = (*parameters)->find("binary_data_size");
  if (binary_size != (*parameters)->end()) {
    if (!binary_size->is_number_unsigned()) {
      return Invalid(absl::StrCat(path, ".parameters.binary_data_size"),
                     absl::StrCat("is ", Describe(*binary_size),
                                  "; expected a non-negative integer"));
    }
    const uint64_t size = binary_size->get<uint64_t>();
    if (size > binary->size()) {
      return Invalid(
          absl::StrCat(path, ".parameters.binary_data_size"),
          absl::StrCat("is ", size, " bytes but only ", binary->size(),
                       " bytes of binary data follow the JSON "
                       "(Inference-Header-Content-Length)"));
    }
    raw->assign(binary->substr(0, size));
    binary->remove_prefix(size);
    if (input.contains("data")) {
      return Invalid(path,
                     "has both \"data\" and parameters.binary_data_size; "
                     "expected one of them");
    }
    return absl::OkStatus();
  }

  // Other datatypes go on without data: OipCore names what is accepted.
  if (*datatype != "FP32" && *datatype != "FP64" && *datatype != "FP16" &&
      *datatype != "BF16") {
    return absl::OkStatus();
  }
  auto data = input.find("data");
  if (data == input.end()) {
    return Invalid(absl::StrCat(path, ".data"), "is missing");
  }
  std::vector<int64_t> dims(tensor->shape().begin(), tensor->shape().end());
  std::vector<double> values;
  absl::Status read =
      DataReader(absl::StrCat(path, ".data"), dims, &values).Read(*data);
  if (!read.ok()) return read;
  return EncodeNumbers(absl::StrCat(path, ".data"), *datatype, values, raw);
}

absl::Status ReadOutput(const json& output, const std::string& path,
                        HttpInferRequest* parsed) {
  if (!output.is_object()) {
    return Invalid(path,
                   absl::StrCat("is ", TypeOf(output), "; expected an object"));
  }
  absl::StatusOr<std::string> name = StringField(output, path, "name");
  if (!name.ok()) return name.status();
  inference::ModelInferRequest::InferRequestedOutputTensor* requested =
      parsed->request.add_outputs();
  requested->set_name(*name);
  absl::StatusOr<const json*> parameters = ParametersOf(output, path);
  if (!parameters.ok()) return parameters.status();
  auto k = (*parameters)->find("classification");
  if (k != (*parameters)->end()) {
    if (!k->is_number_integer()) {
      return Invalid(
          absl::StrCat(path, ".parameters.classification"),
          absl::StrCat("is ", Describe(*k), "; expected an integer"));
    }
    (*requested->mutable_parameters())["classification"].set_int64_param(
        k->get<int64_t>());
  }
  absl::StatusOr<bool> binary = BoolParameter(
      **parameters, absl::StrCat(path, ".parameters"), "binary_data");
  if (!binary.ok()) return binary.status();
  if (*binary) parsed->binary_outputs.push_back(*std::move(name));
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<HttpInferRequest> ParseInferRequestJson(
    std::string_view body, size_t json_size, std::string_view model,
    std::string_view version) {
  json_size = std::min(json_size, body.size());
  json root;
  try {
    root = json::parse(body.substr(0, json_size));
  } catch (const json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the request body is not valid JSON: ", Clip(e.what(), 240),
        "; expected an inference request object {\"inputs\": [...]}"));
  }
  if (!root.is_object()) {
    return Invalid("the request body", absl::StrCat("is ", TypeOf(root),
                                                    "; expected an object "
                                                    "{\"inputs\": [...]}"));
  }
  HttpInferRequest parsed;
  inference::ModelInferRequest& request = parsed.request;
  request.set_model_name(std::string(model));
  request.set_model_version(std::string(version));
  absl::StatusOr<std::string> id = StringField(root, "the request", "id", "");
  if (!id.ok()) return id.status();
  request.set_id(*std::move(id));
  absl::StatusOr<const json*> parameters = ParametersOf(root, "the request");
  if (!parameters.ok()) return parameters.status();
  absl::StatusOr<bool> all_binary = BoolParameter(
      **parameters, "the request's parameters", "binary_data_output");
  if (!all_binary.ok()) return all_binary.status();
  parsed.all_outputs_binary = *all_binary;

  auto inputs = root.find("inputs");
  if (inputs == root.end() || !inputs->is_array()) {
    return Invalid("\"inputs\"",
                   inputs == root.end()
                       ? "is missing; expected an array of input tensors"
                       : absl::StrCat("is ", TypeOf(*inputs),
                                      "; expected an array of input tensors"));
  }
  std::string_view binary = body.substr(json_size);
  for (size_t i = 0; i < inputs->size(); ++i) {
    absl::Status status =
        ReadInput((*inputs)[i], absl::StrCat("inputs[", i, "]"), &binary,
                  request.add_inputs(), request.add_raw_input_contents());
    if (!status.ok()) return status;
  }
  if (!binary.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        binary.size(),
        " bytes of binary data follow the JSON but no input claims them; "
        "expected the inputs' binary_data_size to add up to them"));
  }
  auto outputs = root.find("outputs");
  if (outputs != root.end()) {
    if (!outputs->is_array()) {
      return Invalid("\"outputs\"",
                     absl::StrCat("is ", TypeOf(*outputs),
                                  "; expected an array of requested outputs"));
    }
    for (size_t i = 0; i < outputs->size(); ++i) {
      absl::Status status =
          ReadOutput((*outputs)[i], absl::StrCat("outputs[", i, "]"), &parsed);
      if (!status.ok()) return status;
    }
  }
  return parsed;
}

}  // namespace nnserve::server
