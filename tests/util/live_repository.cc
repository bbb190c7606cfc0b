// A model repository changed while a server watches it: stage, then rename.
#include "tests/util/live_repository.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <system_error>

#include "absl/strings/str_cat.h"
#include "google/protobuf/text_format.h"
#include "tests/util/tensor_files.h"

namespace nnserve::testing {

namespace fs = std::filesystem;

namespace {

void CreateDirOrThrow(const fs::path& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) {
    throw std::runtime_error(
        absl::StrCat("cannot create ", dir.string(), ": ", ec.message()));
  }
}

void WriteVersionFiles(const fs::path& dir,
                       const std::map<std::string, std::string>& files) {
  CreateDirOrThrow(dir);
  for (const auto& [name, bytes] : files) WriteFile(dir / name, bytes);
}

std::map<std::string, std::string> WeightFiles(
    const formats::TensorMap& tensors) {
  return {{kWeightFile, SafetensorsBytes(tensors, formats::DType::kF32)}};
}

}  // namespace

std::string ConfigText(const v1::ModelConfig& config) {
  std::string text;
  if (!google::protobuf::TextFormat::PrintToString(config, &text)) {
    throw std::runtime_error("cannot print the config of " + config.name());
  }
  return text;
}

void RenameOrThrow(const fs::path& from, const fs::path& to) {
  if (std::rename(from.c_str(), to.c_str()) != 0) {
    throw std::runtime_error(absl::StrCat("cannot rename ", from.string(),
                                          " to ", to.string(), ": ",
                                          std::strerror(errno)));
  }
}

LiveRepository::LiveRepository(std::string_view prefix)
    : root_(prefix),
      repository_(root_.path() / "repository"),
      staging_(root_.path() / "staging") {
  CreateDirOrThrow(repository_);
  CreateDirOrThrow(staging_);
}

fs::path LiveRepository::ModelDir(std::string_view model) const {
  return repository_ / std::string(model);
}

fs::path LiveRepository::NewStagingDir() {
  const fs::path dir = staging_ / absl::StrCat("s", next_staging_id_++);
  CreateDirOrThrow(dir);
  return dir;
}

void LiveRepository::AddModel(
    const v1::ModelConfig& config,
    const std::map<int64_t, formats::TensorMap>& versions) {
  const fs::path dir = NewStagingDir() / config.name();
  CreateDirOrThrow(dir);
  WriteFile(dir / "config.pbtxt", ConfigText(config));
  for (const auto& [version, tensors] : versions) {
    WriteVersionFiles(dir / absl::StrCat(version), WeightFiles(tensors));
  }
  RenameOrThrow(dir, ModelDir(config.name()));
}

void LiveRepository::AddVersion(std::string_view model, int64_t version,
                                const formats::TensorMap& tensors) {
  AddVersionFiles(model, version, WeightFiles(tensors));
}

void LiveRepository::AddVersionFiles(
    std::string_view model, int64_t version,
    const std::map<std::string, std::string>& files) {
  const fs::path dir = NewStagingDir() / absl::StrCat(version);
  WriteVersionFiles(dir, files);
  RenameOrThrow(dir, ModelDir(model) / absl::StrCat(version));
}

void LiveRepository::ReplaceFile(const fs::path& relative,
                                 std::string_view bytes) {
  const fs::path staged = NewStagingDir() / relative.filename();
  WriteFile(staged, bytes);
  RenameOrThrow(staged, repository_ / relative);
}

void LiveRepository::ReplaceWeights(std::string_view model, int64_t version,
                                    const formats::TensorMap& tensors) {
  ReplaceFile(
      fs::path(std::string(model)) / absl::StrCat(version) / kWeightFile,
      SafetensorsBytes(tensors, formats::DType::kF32));
}

void LiveRepository::ReplaceConfig(const v1::ModelConfig& config) {
  ReplaceFile(fs::path(config.name()) / "config.pbtxt", ConfigText(config));
}

void LiveRepository::RemoveModel(std::string_view model) {
  const fs::path gone = NewStagingDir() / std::string(model);
  RenameOrThrow(ModelDir(model), gone);
  std::error_code ec;
  fs::remove_all(gone, ec);
}

}  // namespace nnserve::testing
