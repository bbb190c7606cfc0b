// Helpers for the integration tests of the model lifecycle against the real
// binary (model_reload_*, model_policy_* tests): polling ListModels until a
// condition holds (WaitForList) and small readers of its answer;
// label-aware readers of a /metrics scrape (SampleValues, SeriesWith);
// options for a poll-mode server. Calls checked while versions change come
// from call_loop.h (included), repositories changed while the server runs
// from tests/util/live_repository.h, RSS from tests/util/process_memory.h.
//
// Header-only (the test utility library stays free of gRPC). Stateless
// functions; thread-safe.
#ifndef NNSERVE_TESTS_SERVER_INTEGRATION_LIFECYCLE_FIXTURE_H_
#define NNSERVE_TESTS_SERVER_INTEGRATION_LIFECYCLE_FIXTURE_H_

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "tests/server/integration/call_loop.h"
#include "tests/server/integration/integration_fixture.h"

namespace nnserve::testing {

// --- ListModels ---

// The entry of `model` in `list`, or nullptr.
inline const v1::ModelStatus* FindModel(const v1::ListModelsResponse& list,
                                        absl::string_view model) {
  for (const v1::ModelStatus& m : list.models()) {
    if (m.name() == model) return &m;
  }
  return nullptr;
}

// Every listed version of `model` with its state (empty if not listed).
inline std::map<int64_t, v1::ModelVersionStatus> Versions(
    const v1::ListModelsResponse& list, absl::string_view model) {
  std::map<int64_t, v1::ModelVersionStatus> versions;
  if (const v1::ModelStatus* m = FindModel(list, model)) {
    for (const v1::ModelVersionStatus& v : m->versions()) {
      versions[v.version()] = v;
    }
  }
  return versions;
}

// The listed versions of `model` in `state`, ascending.
inline std::vector<int64_t> VersionsIn(const v1::ListModelsResponse& list,
                                       absl::string_view model,
                                       v1::ModelVersionStatus::State state) {
  std::vector<int64_t> out;
  for (const auto& [version, status] : Versions(list, model)) {
    if (status.state() == state) out.push_back(version);
  }
  return out;
}

// The listed versions of `model`, ascending, whatever their state.
inline std::vector<int64_t> ListedVersions(const v1::ListModelsResponse& list,
                                           absl::string_view model) {
  std::vector<int64_t> out;
  for (const auto& entry : Versions(list, model)) out.push_back(entry.first);
  return out;
}

// "m: 1 AVAILABLE, 2 FAILED (error); n: ..." for failure messages.
inline std::string ListText(const v1::ListModelsResponse& list) {
  std::vector<std::string> models;
  for (const v1::ModelStatus& m : list.models()) {
    std::vector<std::string> versions;
    for (const v1::ModelVersionStatus& v : m.versions()) {
      std::string text = absl::StrCat(
          v.version(), " ", v1::ModelVersionStatus::State_Name(v.state()));
      if (!v.error().empty()) absl::StrAppend(&text, " (", v.error(), ")");
      versions.push_back(std::move(text));
    }
    models.push_back(
        absl::StrCat(m.name(), ": ", absl::StrJoin(versions, ", ")));
  }
  return absl::StrCat("[", absl::StrJoin(models, "; "), "]");
}

// Polls ListModels (every 20 ms) until `done` holds for its answer and
// returns that answer; on timeout or server exit, an error naming `what`
// with the last answer seen. Never asserts on how long it took.
inline absl::StatusOr<v1::ListModelsResponse> WaitForList(
    const RunningServer& server,
    const std::function<bool(const v1::ListModelsResponse&)>& done,
    const std::string& what,
    std::chrono::milliseconds timeout = std::chrono::seconds(30)) {
  v1::ListModelsResponse last;
  std::string last_error = "no answer yet";
  absl::Status waited = server.process->WaitUntil(
      [&] {
        absl::StatusOr<v1::ListModelsResponse> list =
            server.client->ListModels();
        if (!list.ok()) {
          last_error = list.status().ToString();
          std::this_thread::sleep_for(std::chrono::milliseconds(20));
          return false;
        }
        last = *std::move(list);
        last_error.clear();
        if (done(last)) return true;
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
        return false;
      },
      timeout, what);
  if (waited.ok()) return last;
  return absl::Status(waited.code(),
                      absl::StrCat(waited.message(), "\nlast ListModels: ",
                                   ListText(last), " ", last_error));
}

// --- /metrics ---

// The values of the samples named exactly `name` whose labels include every
// `labels` pair (in any order, among others), in scrape order.
inline std::vector<double> SampleValues(
    const std::string& text, absl::string_view name,
    const std::map<std::string, std::string>& labels = {}) {
  std::vector<double> values;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    if (line.empty() || line[0] == '#') continue;
    const size_t name_end = line.find_first_of("{ ");
    if (name_end == absl::string_view::npos) continue;
    if (line.substr(0, name_end) != name) continue;
    absl::string_view label_text;
    absl::string_view rest = line.substr(name_end);
    if (rest[0] == '{') {
      const size_t close = rest.find('}');
      if (close == absl::string_view::npos) continue;
      label_text = rest.substr(0, close + 1);
      rest = rest.substr(close + 1);
    }
    bool all = true;
    for (const auto& [key, value] : labels) {
      all = all && absl::StrContains(label_text,
                                     absl::StrCat(key, "=\"", value, "\""));
    }
    if (!all) continue;
    std::vector<absl::string_view> fields =
        absl::StrSplit(rest, ' ', absl::SkipEmpty());
    if (!fields.empty()) values.push_back(std::stod(std::string(fields[0])));
  }
  return values;
}

// Every sample line (any metric) whose labels include all of `labels`.
inline std::vector<std::string> SeriesWith(
    const std::string& text, const std::map<std::string, std::string>& labels) {
  std::vector<std::string> lines;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    if (line.empty() || line[0] == '#') continue;
    const size_t open = line.find('{');
    const size_t close = line.find('}');
    if (open == absl::string_view::npos || close == absl::string_view::npos) {
      continue;
    }
    const absl::string_view label_text = line.substr(open, close - open + 1);
    bool all = true;
    for (const auto& [key, value] : labels) {
      all = all && absl::StrContains(label_text,
                                     absl::StrCat(key, "=\"", value, "\""));
    }
    if (all) lines.emplace_back(line);
  }
  return lines;
}

// --- Servers ---

// Options for nnserve in poll mode on `repository`, rescanning every
// `poll_seconds`, with two inference workers and `extra_args` appended.
inline ServerOptions PollingServerOptions(
    const std::filesystem::path& repository, double poll_seconds,
    std::vector<std::string> extra_args = {}) {
  ServerOptions options;
  options.model_repository = repository;
  options.extra_args = {
      "--model-control-mode=poll",
      absl::StrCat("--repository-poll-seconds=", poll_seconds), "--threads=2"};
  for (std::string& arg : extra_args) {
    options.extra_args.push_back(std::move(arg));
  }
  return options;
}

}  // namespace nnserve::testing

#endif  // NNSERVE_TESTS_SERVER_INTEGRATION_LIFECYCLE_FIXTURE_H_
