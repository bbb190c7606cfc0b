#include "server/frontend/oip_codec.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/str_util.h"
#include "formats/half.h"

namespace nnserve::server {

namespace {

constexpr std::string_view kAccepted =
    "FP32 (fp32_contents or raw), FP64 (fp64_contents or raw), FP16 or BF16 "
    "(raw only)";

struct DatatypeInfo {
  formats::DType dtype;
  bool has_contents;  // FP32/FP64 have a typed contents field.
};

absl::StatusOr<DatatypeInfo> LookUpDatatype(std::string_view datatype,
                                            std::string_view description) {
  if (datatype == "FP32") return DatatypeInfo{formats::DType::kF32, true};
  if (datatype == "FP64") return DatatypeInfo{formats::DType::kF64, true};
  if (datatype == "FP16") return DatatypeInfo{formats::DType::kF16, false};
  if (datatype == "BF16") return DatatypeInfo{formats::DType::kBF16, false};
  return absl::InvalidArgumentError(
      absl::StrCat("datatype '", Clip(datatype), "' is not accepted for ",
                   Sv(description), "; expected ", Sv(kAccepted)));
}

bool ContentsEmpty(const inference::InferTensorContents& c) {
  return c.bool_contents_size() == 0 && c.int_contents_size() == 0 &&
         c.int64_contents_size() == 0 && c.uint_contents_size() == 0 &&
         c.uint64_contents_size() == 0 && c.fp32_contents_size() == 0 &&
         c.fp64_contents_size() == 0 && c.bytes_contents_size() == 0;
}

absl::Status CheckFinite(std::span<const float> values, int64_t features,
                         std::string_view description) {
  for (size_t i = 0; i < values.size(); ++i) {
    if (!std::isfinite(values[i])) {
      return absl::InvalidArgumentError(absl::StrCat(
          "input value at row ", static_cast<int64_t>(i) / features,
          ", column ", static_cast<int64_t>(i) % features, " of ",
          Sv(description), " is ", values[i], "; expected finite values"));
    }
  }
  return absl::OkStatus();
}

void AppendRawBytesElement(std::string_view element, std::string* raw) {
  const auto size = static_cast<uint32_t>(element.size());
  const char prefix[4] = {static_cast<char>(size & 0xff),
                          static_cast<char>((size >> 8) & 0xff),
                          static_cast<char>((size >> 16) & 0xff),
                          static_cast<char>((size >> 24) & 0xff)};
  raw->append(prefix, 4);
  raw->append(element);
}

}  // namespace

absl::StatusOr<OipInput> DecodeOipInput(
    const inference::ModelInferRequest& request,
    const InputExpectation& expected) {
  const std::string_view what = expected.description;
  if (request.inputs_size() != 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("the request has ", request.inputs_size(),
                     " input tensors; expected exactly one, for ", Sv(what)));
  }
  const inference::ModelInferRequest::InferInputTensor& tensor =
      request.inputs(0);
  if (!expected.name.empty() && tensor.name() != expected.name) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the request's input tensor is named '", Clip(tensor.name()),
        "'; expected '", Sv(expected.name), "' for ", Sv(what)));
  }
  absl::StatusOr<DatatypeInfo> type = LookUpDatatype(tensor.datatype(), what);
  if (!type.ok()) return type.status();

  // Shape.
  const auto& shape = tensor.shape();
  OipInput out;
  if (shape.size() == 1) {
    out.rows = 1;
    out.features = shape[0];
  } else if (shape.size() == 2) {
    out.rows = shape[0];
    out.features = shape[1];
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("input shape [", absl::StrJoin(shape, ", "), "] has rank ",
                     shape.size(), "; expected [batch, ", expected.features,
                     "] or [", expected.features, "] for ", Sv(what)));
  }
  if (out.features != expected.features) {
    return absl::InvalidArgumentError(absl::StrCat(
        "input shape [", absl::StrJoin(shape, ", "), "] has ", out.features,
        " features; expected ", expected.features, " for ", Sv(what)));
  }
  if (out.rows < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("input shape [", absl::StrJoin(shape, ", "),
                     "] has batch ", out.rows, "; expected at least 1 row"));
  }
  if (out.rows > expected.max_batch_rows) {
    return absl::InvalidArgumentError(absl::StrCat(
        "input batch of ", out.rows, " rows is over the server's limit of ",
        expected.max_batch_rows,
        " rows per request (--max-batch-rows); split the batch"));
  }
  const size_t count = static_cast<size_t>(out.rows * out.features);

  // Data.
  out.values.resize(count);
  if (request.raw_input_contents_size() > 0) {
    out.raw = true;
    if (request.raw_input_contents_size() != 1) {
      return absl::InvalidArgumentError(absl::StrCat(
          "raw_input_contents has ", request.raw_input_contents_size(),
          " entries; expected one per input tensor (1)"));
    }
    if (!ContentsEmpty(tensor.contents())) {
      return absl::InvalidArgumentError(
          "the input tensor has both contents and raw_input_contents; "
          "expected exactly one of them");
    }
    const std::string& raw = request.raw_input_contents(0);
    const size_t size = formats::DTypeSize(type->dtype);
    if (raw.size() != count * size) {
      return absl::InvalidArgumentError(absl::StrCat(
          "raw_input_contents holds ", raw.size(), " bytes; expected ", count,
          " ", tensor.datatype(), " values of ", size, " bytes = ",
          count * size, " bytes for shape [", absl::StrJoin(shape, ", "), "]"));
    }
    if (std::optional<size_t> bad = formats::DecodeLittleEndian(
            type->dtype, reinterpret_cast<const unsigned char*>(raw.data()),
            count, out.values.data())) {
      return absl::InvalidArgumentError(absl::StrCat(
          "input value at row ", static_cast<int64_t>(*bad) / out.features,
          ", column ", static_cast<int64_t>(*bad) % out.features,
          " is beyond the float32 range; expected finite float32 values"));
    }
  } else if (!type->has_contents) {
    return absl::InvalidArgumentError(absl::StrCat(
        tensor.datatype(),
        " input data must be sent in raw_input_contents (the standard has no "
        "typed contents field for 16-bit floats); expected ",
        Sv(kAccepted)));
  } else if (type->dtype == formats::DType::kF32) {
    const auto& v = tensor.contents().fp32_contents();
    if (static_cast<size_t>(v.size()) != count) {
      return absl::InvalidArgumentError(absl::StrCat(
          "contents.fp32_contents has ", v.size(), " values; expected ", count,
          " for shape [", absl::StrJoin(shape, ", "), "]"));
    }
    std::copy(v.begin(), v.end(), out.values.begin());
  } else {
    const auto& v = tensor.contents().fp64_contents();
    if (static_cast<size_t>(v.size()) != count) {
      return absl::InvalidArgumentError(absl::StrCat(
          "contents.fp64_contents has ", v.size(), " values; expected ", count,
          " for shape [", absl::StrJoin(shape, ", "), "]"));
    }
    for (size_t i = 0; i < count; ++i) {
      const double d = v[static_cast<int>(i)];
      if (std::isfinite(d) &&
          std::fabs(d) > std::numeric_limits<float>::max()) {
        return absl::InvalidArgumentError(absl::StrCat(
            "input value at row ", static_cast<int64_t>(i) / out.features,
            ", column ", static_cast<int64_t>(i) % out.features, " is ", d,
            ", beyond the float32 range; expected finite float32 values"));
      }
      out.values[i] = static_cast<float>(d);
    }
  }
  absl::Status finite = CheckFinite(out.values, out.features, what);
  if (!finite.ok()) return finite;
  return out;
}

absl::StatusOr<std::vector<RequestedOutput>> ResolveRequestedOutputs(
    const inference::ModelInferRequest& request,
    const engine::ModelInfo& info) {
  const size_t last = info.layers.size() - 1;
  std::vector<RequestedOutput> outputs;
  if (request.outputs_size() == 0) {
    outputs.push_back({.name = info.output_name, .layer = last});
    return outputs;
  }
  for (const auto& wanted : request.outputs()) {
    RequestedOutput out{.name = wanted.name()};
    if (wanted.name() == info.output_name) {
      out.layer = last;
    } else {
      auto it = std::find_if(info.layers.begin(), info.layers.end(),
                             [&](const engine::LayerInfo& layer) {
                               return layer.name == wanted.name();
                             });
      if (it == info.layers.end()) {
        std::vector<std::string> valid = {info.output_name};
        for (const engine::LayerInfo& layer : info.layers) {
          valid.push_back(layer.name);
        }
        return absl::InvalidArgumentError(
            absl::StrCat("requested output '", Clip(wanted.name()),
                         "' is not an output of ", "model '", info.name,
                         "'; expected one of: ", absl::StrJoin(valid, ", ")));
      }
      out.layer = static_cast<size_t>(it - info.layers.begin());
    }
    const int64_t units = info.layers[out.layer].output_size;
    for (const auto& [key, value] : wanted.parameters()) {
      if (key != "classification") {
        return absl::InvalidArgumentError(absl::StrCat(
            "requested output '", Clip(wanted.name()), "' has parameter '",
            Clip(key), "'; expected only 'classification'"));
      }
      if (value.parameter_choice_case() !=
          inference::InferParameter::kInt64Param) {
        return absl::InvalidArgumentError(
            absl::StrCat("parameter 'classification' of requested output '",
                         Clip(wanted.name()),
                         "' is not an int64_param; expected the "
                         "number of classes to return as int64_param"));
      }
      const int64_t k = value.int64_param();
      if (k < 1 || k > units) {
        return absl::InvalidArgumentError(
            absl::StrCat("parameter 'classification' of requested output '",
                         Clip(wanted.name()), "' is ", k, "; expected 1 to ",
                         units, " (the output's units)"));
      }
      out.top_k = k;
    }
    outputs.push_back(std::move(out));
  }
  return outputs;
}

absl::StatusOr<int64_t> ParseOipVersion(std::string_view version) {
  if (version.empty()) return 0;
  int64_t parsed = 0;
  if (!absl::SimpleAtoi(Sv(version), &parsed) || parsed < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("model version '", Clip(version),
                     "' is not a positive integer; expected a version "
                     "number such as \"1\", or empty for the newest"));
  }
  return parsed;
}

void AppendFp32Output(std::string_view name, int64_t rows, int64_t cols,
                      std::span<const float> values, bool raw,
                      inference::ModelInferResponse* response) {
  inference::ModelInferResponse::InferOutputTensor* out =
      response->add_outputs();
  out->set_name(std::string(name));
  out->set_datatype("FP32");
  out->add_shape(rows);
  out->add_shape(cols);
  if (raw) {
    response->add_raw_output_contents()->assign(
        reinterpret_cast<const char*>(values.data()), values.size_bytes());
  } else {
    out->mutable_contents()->mutable_fp32_contents()->Add(values.begin(),
                                                          values.end());
  }
}

void AppendClassificationOutput(std::string_view name, int64_t rows,
                                int64_t cols, std::span<const float> values,
                                int64_t k,
                                const std::vector<std::string>& labels,
                                bool raw,
                                inference::ModelInferResponse* response) {
  inference::ModelInferResponse::InferOutputTensor* out =
      response->add_outputs();
  out->set_name(std::string(name));
  out->set_datatype("BYTES");
  out->add_shape(rows);
  out->add_shape(k);
  std::string* raw_out = raw ? response->add_raw_output_contents() : nullptr;
  std::vector<int64_t> order(static_cast<size_t>(cols));
  for (int64_t r = 0; r < rows; ++r) {
    const float* row = values.data() + r * cols;
    std::iota(order.begin(), order.end(), int64_t{0});
    // Descending; NaN after every number; ties keep the lower index first.
    std::partial_sort(order.begin(), order.begin() + k, order.end(),
                      [row](int64_t a, int64_t b) {
                        const bool nan_a = std::isnan(row[a]);
                        const bool nan_b = std::isnan(row[b]);
                        if (nan_a != nan_b) return nan_b;
                        if (!nan_a && row[a] != row[b]) return row[a] > row[b];
                        return a < b;
                      });
    for (int64_t i = 0; i < k; ++i) {
      const int64_t index = order[static_cast<size_t>(i)];
      std::string element = absl::StrCat(row[index], ":", index);
      if (!labels.empty() && static_cast<size_t>(index) < labels.size()) {
        absl::StrAppend(&element, ":", labels[static_cast<size_t>(index)]);
      }
      if (raw) {
        AppendRawBytesElement(element, raw_out);
      } else {
        out->mutable_contents()->add_bytes_contents(std::move(element));
      }
    }
  }
}

}  // namespace nnserve::server
