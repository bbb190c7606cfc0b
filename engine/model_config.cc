// Parsing of config.pbtxt (protobuf text format) into nnserve.v1.ModelConfig.
#include "engine/model_config.h"

#include <algorithm>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/str_util.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/io/tokenizer.h"
#include "google/protobuf/text_format.h"

namespace nnserve::engine {
namespace {

// Collects every parser error as "line:column: message" (1-based).
class CollectingErrorCollector : public google::protobuf::io::ErrorCollector {
 public:
  explicit CollectingErrorCollector(std::string_view text) : text_(text) {}

  void AddError(int line, google::protobuf::io::ColumnNumber column,
                const std::string& message) override {
    std::string hint;
    if (message.find("enumeration value") != std::string::npos) {
      hint = EnumHint(message);
      LocateEnumValue(message, &line, &column);
    }
    errors_.push_back(
        absl::StrCat(line + 1, ":", column + 1, ": ", message, hint));
  }

  const std::vector<std::string>& errors() const { return errors_; }

 private:
  // For an unknown enum value of a known field, lists the accepted names.
  static std::string EnumHint(const std::string& message) {
    const google::protobuf::EnumDescriptor* enum_type = nullptr;
    if (message.find("\"activation\"") != std::string::npos) {
      enum_type = v1::Activation_descriptor();
    } else if (message.find("\"weight_layout\"") != std::string::npos) {
      enum_type = v1::WeightLayout_descriptor();
    } else if (message.find("\"precision\"") != std::string::npos) {
      enum_type = v1::Precision_descriptor();
    }
    if (enum_type == nullptr) return "";
    std::vector<std::string> names;
    for (int i = 0; i < enum_type->value_count(); ++i) {
      const std::string& name = enum_type->value(i)->name();
      // ACTIVATION_UNSPECIFIED parses but is rejected by validation.
      if (name == "ACTIVATION_UNSPECIFIED") continue;
      names.push_back(name);
    }
    return absl::StrCat(" (expected one of ", absl::StrJoin(names, ", "), ")");
  }

  // The parser reports an unknown enum value at the token after it; move
  // the position back to the value itself (its last occurrence before the
  // reported position).
  void LocateEnumValue(const std::string& message, int* line,
                       int* column) const {
    const size_t open = message.find('"');
    const size_t close = message.find('"', open + 1);
    if (open == std::string::npos || close == std::string::npos) return;
    const std::string value = message.substr(open + 1, close - open - 1);
    size_t offset = 0;
    for (int l = 0; l < *line && offset != std::string_view::npos; ++l) {
      offset = text_.find('\n', offset);
      if (offset != std::string_view::npos) ++offset;
    }
    if (offset == std::string_view::npos) return;
    const size_t found =
        text_.substr(0, std::min(text_.size(), offset + *column)).rfind(value);
    if (found == std::string_view::npos) return;
    const size_t line_start = text_.rfind('\n', found);
    *line = static_cast<int>(
        std::count(text_.begin(), text_.begin() + found, '\n'));
    *column = static_cast<int>(
        line_start == std::string_view::npos ? found : found - line_start - 1);
  }

  std::string_view text_;
  std::vector<std::string> errors_;
};

}  // namespace

absl::StatusOr<v1::ModelConfig> ParseModelConfig(std::string_view text,
                                                 std::string_view source) {
  v1::ModelConfig config;
  CollectingErrorCollector collector(text);
  google::protobuf::TextFormat::Parser parser;
  parser.RecordErrorsTo(&collector);
  parser.AllowUnknownField(false);
  parser.AllowUnknownExtension(false);
  if (!parser.ParseFromString(std::string(text), &config)) {
    if (collector.errors().empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          Sv(source), ": not a valid nnserve.v1.ModelConfig in text format"));
    }
    return absl::InvalidArgumentError(
        absl::StrCat(Sv(source), ":", absl::StrJoin(collector.errors(), "; ")));
  }
  return config;
}

}  // namespace nnserve::engine
