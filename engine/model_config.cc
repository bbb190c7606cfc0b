// Parsing of config.pbtxt (protobuf text format) into nnserve.v1.ModelConfig.
#include "engine/model_config.h"

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "engine/str_util.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/io/tokenizer.h"
#include "google/protobuf/text_format.h"

namespace nnserve::engine {
namespace {

// Collects every parser error as "line:column: message" (1-based).
class CollectingErrorCollector : public google::protobuf::io::ErrorCollector {
 public:
  void AddError(int line, google::protobuf::io::ColumnNumber column,
                const std::string& message) override {
    errors_.push_back(absl::StrCat(line + 1, ":", column + 1, ": ", message));
    if (message.find("enumeration value") != std::string::npos) {
      errors_.back() += EnumHint(message);
    }
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

  std::vector<std::string> errors_;
};

}  // namespace

absl::StatusOr<v1::ModelConfig> ParseModelConfig(std::string_view text,
                                                 std::string_view source) {
  v1::ModelConfig config;
  CollectingErrorCollector collector;
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
