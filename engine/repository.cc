// The on-disk model repository (see repository.h).
#include "engine/repository.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <set>
#include <string>
#include <system_error>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/exceptions.h"
#include "common/str_util.h"
#include "engine/model_config.h"
#include "engine/model_spec.h"
#include "engine/probe.h"
#include "formats/npy.h"
#include "formats/safetensors.h"

namespace nnserve::engine {
namespace {

namespace fs = std::filesystem;

constexpr uintmax_t kMaxConfigBytes = uintmax_t{1} << 20;      // 1 MiB
constexpr uintmax_t kMaxTensorFileBytes = uintmax_t{4} << 30;  // 4 GiB
constexpr char kConfigFile[] = "config.pbtxt";
constexpr char kSafetensorsFile[] = "model.safetensors";

// Reads a whole regular file, refusing files larger than `max_bytes`.
absl::StatusOr<std::string> ReadFileBounded(const fs::path& path,
                                            uintmax_t max_bytes) {
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) {
    return absl::NotFoundError(
        absl::StrCat(path.string(), ": not found (expected a regular file)"));
  }
  const uintmax_t size = fs::file_size(path, ec);
  if (ec) {
    return absl::InternalError(
        absl::StrCat(path.string(), ": cannot stat: ", ec.message()));
  }
  if (size > max_bytes) {
    return absl::InvalidArgumentError(
        absl::StrCat(path.string(), ": file is ", size,
                     " bytes, expected at most ", max_bytes));
  }
  std::FILE* file = std::fopen(path.c_str(), "rb");
  if (file == nullptr) {
    return absl::PermissionDeniedError(
        absl::StrCat(path.string(), ": cannot open for reading"));
  }
  std::string bytes(size, '\0');
  const size_t read = std::fread(bytes.data(), 1, size, file);
  std::fclose(file);
  if (read != size) {
    return absl::InternalError(
        absl::StrCat(path.string(), ": read ", read, " of ", size, " bytes"));
  }
  return bytes;
}

// "models/digits" -> "digits", tolerating a trailing slash.
std::string DirName(const fs::path& dir) {
  fs::path normal = dir.lexically_normal();
  if (normal.filename().empty()) normal = normal.parent_path();
  return normal.filename().string();
}

// Parses a positive decimal version number; false for anything else.
bool ParseVersion(const std::string& name, int64_t* version) {
  if (name.empty() || name.size() > 18 || name[0] == '0') return false;
  int64_t value = 0;
  for (char c : name) {
    if (c < '0' || c > '9') return false;
    value = value * 10 + (c - '0');
  }
  *version = value;
  return true;
}

}  // namespace

absl::StatusOr<std::vector<std::string>> ListModelNames(
    const fs::path& repository) {
  std::error_code ec;
  if (!fs::is_directory(repository, ec)) {
    return absl::NotFoundError(
        absl::StrCat(repository.string(),
                     ": model repository not found (expected a "
                     "directory of model directories)"));
  }
  std::vector<std::string> names;
  for (fs::directory_iterator it(repository, ec), end; !ec && it != end;
       it.increment(ec)) {
    if (!it->is_directory(ec)) continue;
    std::string name = it->path().filename().string();
    if (!IsValidModelName(name)) {
      return absl::InvalidArgumentError(
          absl::StrCat(it->path().string(), ": '", name,
                       "' is not a valid model name, expected "
                       "[A-Za-z0-9][A-Za-z0-9_.-]{0,63}"));
    }
    names.push_back(std::move(name));
  }
  if (ec) {
    return absl::InternalError(absl::StrCat(
        repository.string(), ": cannot list directory: ", ec.message()));
  }
  std::sort(names.begin(), names.end());
  return names;
}

absl::StatusOr<std::vector<int64_t>> ListVersions(const fs::path& model_dir) {
  std::error_code ec;
  std::vector<int64_t> versions;
  for (fs::directory_iterator it(model_dir, ec), end; !ec && it != end;
       it.increment(ec)) {
    int64_t version = 0;
    if (it->is_directory(ec) &&
        ParseVersion(it->path().filename().string(), &version)) {
      versions.push_back(version);
    }
  }
  if (ec) {
    return absl::NotFoundError(absl::StrCat(
        model_dir.string(), ": cannot list model directory: ", ec.message()));
  }
  if (versions.empty()) {
    return absl::NotFoundError(absl::StrCat(
        model_dir.string(),
        ": no version directories, expected at least one positive integer "
        "subdirectory such as 1/"));
  }
  std::sort(versions.begin(), versions.end());
  return versions;
}

absl::StatusOr<v1::ModelConfig> ReadModelConfig(const fs::path& model_dir) {
  const fs::path path = model_dir / kConfigFile;
  absl::StatusOr<std::string> text = ReadFileBounded(path, kMaxConfigBytes);
  if (!text.ok()) return text.status();
  return ParseValidatedModelConfig(*text, path.string(), DirName(model_dir));
}

absl::StatusOr<v1::ModelConfig> ParseValidatedModelConfig(
    std::string_view text, std::string_view source,
    std::string_view expected_name) {
  absl::StatusOr<v1::ModelConfig> config = ParseModelConfig(text, source);
  if (!config.ok()) return config.status();
  if (config->name() != expected_name) {
    return absl::InvalidArgumentError(
        absl::StrCat(Sv(source), ": name is '", config->name(), "', expected '",
                     Sv(expected_name), "' (the model directory's name)"));
  }
  if (absl::Status s = ValidateModelConfig(*config, source); !s.ok()) {
    return s;
  }
  if (absl::Status s = ValidateVersionPolicy(config->version_policy(), source);
      !s.ok()) {
    return s;
  }
  return config;
}

absl::Status ValidateVersionPolicy(const v1::ModelVersionPolicy& policy,
                                   std::string_view source) {
  switch (policy.policy_choice_case()) {
    case v1::ModelVersionPolicy::kLatest:
      if (policy.latest().num_versions() < 1) {
        return absl::InvalidArgumentError(absl::StrCat(
            Sv(source), ": version_policy.latest.num_versions is ",
            policy.latest().num_versions(),
            ", expected >= 1 (how many of the highest versions to serve)"));
      }
      return absl::OkStatus();
    case v1::ModelVersionPolicy::kSpecific: {
      const auto& versions = policy.specific().versions();
      if (versions.empty()) {
        return absl::InvalidArgumentError(absl::StrCat(
            Sv(source),
            ": version_policy.specific.versions is empty, expected at least "
            "one version number"));
      }
      for (int i = 0; i < versions.size(); ++i) {
        if (versions[i] < 1) {
          return absl::InvalidArgumentError(absl::StrCat(
              Sv(source), ": version_policy.specific.versions[", i, "] is ",
              versions[i], ", expected a version number >= 1"));
        }
      }
      return absl::OkStatus();
    }
    case v1::ModelVersionPolicy::kAll:
    case v1::ModelVersionPolicy::POLICY_CHOICE_NOT_SET:
      return absl::OkStatus();
  }
  return absl::OkStatus();
}

absl::StatusOr<ModelDirectory> ReadModelDirectory(const fs::path& model_dir) {
  ModelDirectory directory;
  absl::StatusOr<v1::ModelConfig> config = ReadModelConfig(model_dir);
  if (!config.ok()) return config.status();
  absl::StatusOr<std::vector<int64_t>> versions = ListVersions(model_dir);
  if (!versions.ok()) return versions.status();
  directory.config = *std::move(config);
  directory.versions = *std::move(versions);
  return directory;
}

absl::StatusOr<formats::TensorMap> ReadTensors(const fs::path& version_dir,
                                               const v1::ModelConfig& config) {
  std::set<std::string> referenced;
  for (const v1::LayerConfig& layer : config.layers()) {
    referenced.insert(layer.weight());
    if (!layer.bias().empty()) referenced.insert(layer.bias());
  }
  std::set<std::string> files;
  std::error_code ec;
  for (fs::directory_iterator it(version_dir, ec), end; !ec && it != end;
       it.increment(ec)) {
    files.insert(it->path().filename().string());
  }
  if (ec) {
    return absl::NotFoundError(
        absl::StrCat(version_dir.string(),
                     ": cannot list version directory: ", ec.message()));
  }
  // The probe batch of BF16/INT8 loads (probe.h) may sit here too.
  if (!referenced.contains("sample_input")) files.erase("sample_input.npy");

  if (files.contains(kSafetensorsFile)) {
    std::vector<std::string> others;
    for (const std::string& f : files) {
      if (f != kSafetensorsFile) others.push_back(f);
    }
    if (!others.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          version_dir.string(), ": unexpected file(s) next to ",
          kSafetensorsFile, ": ", absl::StrJoin(others, ", "),
          "; expected either model.safetensors alone or one <tensor>.npy "
          "per tensor, not both"));
    }
    const fs::path path = version_dir / kSafetensorsFile;
    absl::StatusOr<std::string> bytes =
        ReadFileBounded(path, kMaxTensorFileBytes);
    if (!bytes.ok()) return bytes.status();
    return formats::ParseSafetensors(*bytes, path.string());
  }

  std::vector<std::string> unknown;
  for (const std::string& f : files) {
    const bool is_npy = f.size() > 4 && f.ends_with(".npy");
    if (!is_npy || !referenced.contains(f.substr(0, f.size() - 4))) {
      unknown.push_back(f);
    }
  }
  if (!unknown.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        version_dir.string(),
        ": unexpected file(s): ", absl::StrJoin(unknown, ", "),
        "; expected model.safetensors or one <tensor>.npy per tensor the "
        "config references"));
  }
  formats::TensorMap tensors;
  for (const std::string& name : referenced) {
    const fs::path path = version_dir / (name + ".npy");
    if (!files.contains(name + ".npy")) {
      return absl::NotFoundError(absl::StrCat(
          path.string(), ": not found; expected it for tensor '", name,
          "' (no model.safetensors in ", version_dir.string(), ")"));
    }
    absl::StatusOr<std::string> bytes =
        ReadFileBounded(path, kMaxTensorFileBytes);
    if (!bytes.ok()) return bytes.status();
    absl::StatusOr<formats::Tensor> tensor =
        formats::ParseNpy(*bytes, path.string());
    if (!tensor.ok()) return tensor.status();
    tensors.emplace(name, *std::move(tensor));
  }
  return tensors;
}

namespace {

absl::StatusOr<LoadedVersion> LoadVersionOrThrow(const fs::path& model_dir,
                                                 v1::ModelConfig config,
                                                 int64_t version,
                                                 const EngineOptions& options) {
  const auto start = std::chrono::steady_clock::now();
  const fs::path version_dir = model_dir / std::to_string(version);
  absl::StatusOr<formats::TensorMap> tensors = ReadTensors(version_dir, config);
  if (!tensors.ok()) return tensors.status();
  const std::string source = fs::exists(version_dir / kSafetensorsFile)
                                 ? (version_dir / kSafetensorsFile).string()
                                 : (version_dir / "*.npy").string();
  absl::StatusOr<ModelSpec> spec =
      BuildModelSpec(config, *std::move(tensors), source);
  if (!spec.ok()) return spec.status();
  if (options.precision_override.value_or(spec->precision) !=
      Precision::kFp32) {
    absl::StatusOr<ProbeBatch> probe =
        ReadProbeBatch(model_dir, version_dir, spec->input_size);
    if (!probe.ok()) return probe.status();
    spec->probe = *std::move(probe);
  }
  const double read_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
          .count();
  absl::StatusOr<std::shared_ptr<const Model>> model =
      Model::Create(*std::move(spec), version, options, read_seconds);
  if (!model.ok()) return model.status();
  return LoadedVersion{*std::move(model), std::move(config)};
}

}  // namespace

absl::StatusOr<LoadedVersion> LoadVersion(const fs::path& model_dir,
                                          v1::ModelConfig config,
                                          int64_t version,
                                          const EngineOptions& options) {
  // Model::Create has its own boundary; this one covers reading and
  // converting the files (e.g. an allocation failure on a huge tensor).
  const std::string what =
      absl::StrCat("loading '", model_dir.string(), "' version ", version);
  try {
    return LoadVersionOrThrow(model_dir, std::move(config), version, options);
  } catch (const std::exception& e) {
    return StatusFromException(e, what);
  } catch (...) {
    return StatusFromUnknownException(what);
  }
}

absl::StatusOr<std::shared_ptr<const Model>> LoadModel(
    const fs::path& model_dir, int64_t version, const EngineOptions& options) {
  absl::StatusOr<ModelDirectory> directory = ReadModelDirectory(model_dir);
  if (!directory.ok()) return directory.status();
  const std::vector<int64_t>& versions = directory->versions;
  if (version == 0) {
    version = versions.back();
  } else if (std::find(versions.begin(), versions.end(), version) ==
             versions.end()) {
    return absl::NotFoundError(
        absl::StrCat(model_dir.string(), ": version ", version,
                     " not found, available: ", absl::StrJoin(versions, ", ")));
  }
  absl::StatusOr<LoadedVersion> loaded =
      LoadVersion(model_dir, std::move(directory->config), version, options);
  if (!loaded.ok()) return loaded.status();
  return std::move(loaded->model);
}

}  // namespace nnserve::engine
