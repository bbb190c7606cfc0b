// Soak test against the real binary (issue 10), bounded to about a minute:
// 64 callers, each on a connection of its own, send back to back — more
// than the server can take (a short queue, two workers) — a mix of
//   valid calls (values and raw encoding)  → OK with exactly the reference
//                                            output, or RESOURCE_EXHAUSTED
//                                            (queue full);
//   wrong shape, NaN in the input          → INVALID_ARGUMENT;
//   unknown model                          → NOT_FOUND;
//   garbage bytes (not a PredictRequest)   → UNIMPLEMENTED with no message:
//                                            what gRPC 1.51's callback API
//                                            answers a request it cannot
//                                            parse (the handler never runs);
//   oversized (over the message limit)     → RESOURCE_EXHAUSTED;
//   any kind, on a connection gRPC closed over its memory quota
//                                          → UNAVAILABLE.
// Asserts: the server never crashes (still running and SERVING at the end),
// each kind gets only its codes, every valid answer is exact, and the RSS
// after the run is within 10 % of the RSS after a warm-up round (both read
// with the server idle). Timing never decides pass/fail: the rounds last a
// fixed time and nothing is asserted about how many calls got through.
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <iostream>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/server/integration/integration_fixture.h"
#include "tests/server/integration/memory_load.h"
#include "tests/util/process_memory.h"
#include "tests/util/sanitizers.h"

namespace nnserve::testing {
namespace {

constexpr int64_t kFeatures = 256;
constexpr int64_t kRows = 32;
constexpr int kCallers = 64;
constexpr auto kWarmUp = std::chrono::seconds(15);
constexpr auto kSoak = std::chrono::seconds(40);

// 256 → 512 RELU → 512 RELU → 10 SOFTMAX: ~400 k parameters, so 32-row
// calls go to the workers and 64 callers keep them saturated.
RandomModel SoakModel() {
  return BuildRandomModel("soak", kFeatures,
                          {LayerDef(512, engine::Activation::kRelu),
                           LayerDef(512, engine::Activation::kRelu),
                           LayerDef(10, engine::Activation::kSoftmax)},
                          engine::WeightLayout::kOutIn, 21);
}

enum Kind {
  kValidValues,
  kValidRaw,
  kWrongShape,
  kNaN,
  kUnknownModel,
  kGarbage,
  kOversized,
  kKinds
};
const char* const kKindNames[kKinds] = {
    "valid (values)", "valid (raw)", "wrong shape", "NaN",
    "unknown model",  "garbage",     "oversized"};

struct Request {
  grpc::ByteBuffer bytes;
  std::set<grpc::StatusCode> expected;
};

// Outcomes of one round, per kind and code.
struct Tally {
  std::mutex mutex;
  std::map<std::pair<int, grpc::StatusCode>, int64_t> counts;
  std::map<std::pair<int, grpc::StatusCode>, std::string> examples;
  int64_t inexact = 0;
};

// 64 callers for `duration`, caller i starting at kind i % kKinds and
// moving to the next kind after every call.
void RunRound(const std::string& target, const std::vector<Request>& requests,
              const std::vector<double>& expected,
              std::chrono::seconds duration, Tally* tally) {
  const auto end = std::chrono::steady_clock::now() + duration;
  std::vector<std::thread> callers;
  for (int i = 0; i < kCallers; ++i) {
    callers.emplace_back([&, i] {
      RawCaller caller(target);
      int kind = i % kKinds;
      while (std::chrono::steady_clock::now() < end) {
        grpc::ByteBuffer response_bytes;
        const grpc::Status status =
            caller.Call(kPredictMethod, requests[kind].bytes, &response_bytes,
                        std::chrono::seconds(60));
        bool exact = true;
        if (status.ok() && (kind == kValidValues || kind == kValidRaw)) {
          v1::PredictResponse response;
          absl::StatusOr<RowBatch> output =
              ParseByteBuffer(response_bytes, &response)
                  ? DecodeTensor(response.output())
                  : absl::InternalError("unparsable response");
          exact = output.ok() && output->rows == kRows &&
                  MaxRowRelativeError(output->values, expected, kRows) <= 1e-5;
        }
        {
          std::lock_guard<std::mutex> lock(tally->mutex);
          const auto key = std::make_pair(kind, status.error_code());
          ++tally->counts[key];
          tally->examples.emplace(key, status.error_message().substr(0, 200));
          if (!exact) ++tally->inexact;
        }
        kind = (kind + 1) % kKinds;
      }
    });
  }
  for (std::thread& caller : callers) caller.join();
}

// Checks every outcome of `tally` against the kinds' expected codes.
void ExpectOnlyExpectedCodes(const std::vector<Request>& requests, Tally& tally,
                             const char* round) {
  std::string summary;
  for (const auto& [key, count] : tally.counts) {
    const auto& [kind, code] = key;
    absl::StrAppend(&summary, "\n  ", kKindNames[kind], ": code ",
                    static_cast<int>(code), " x", count, " e.g. '",
                    tally.examples[key], "'");
    EXPECT_TRUE(requests[kind].expected.count(code))
        << round << ": " << count << " " << kKindNames[kind]
        << " calls answered with code " << static_cast<int>(code) << ": "
        << tally.examples[key];
  }
  EXPECT_EQ(tally.inexact, 0) << round;
  EXPECT_GT((tally.counts[{kValidValues, grpc::StatusCode::OK}]), 0) << round;
  EXPECT_GT((tally.counts[{kValidRaw, grpc::StatusCode::OK}]), 0) << round;
  std::cout << "[ soak ] " << round << ":" << summary << "\n";
}

// The RSS of `pid` once the server is idle: the smallest of a few samples
// (freed memory may take a moment to leave).
int64_t IdleRss(pid_t pid) {
  int64_t smallest = INT64_MAX;
  for (int i = 0; i < 10; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    absl::StatusOr<int64_t> rss = ResidentBytes(pid);
    if (rss.ok()) smallest = std::min(smallest, *rss);
  }
  return smallest;
}

TEST(SoakIntegrationTest, MixedCallsOverCapacityKeepTheServerExactAndFlat) {
  ScopedTempDir repo("nnserve_soak");
  const RandomModel model = SoakModel();
  WriteModelDir(repo.path(), model, 1, FileFormat::kSafetensors,
                formats::DType::kF32);
  ServerOptions options;
  options.model_repository = repo.path();
  // A short queue so that 64 callers overflow it. No --max-message-bytes:
  // the derived limit (4 MiB for this model) refuses the oversized calls.
  options.extra_args = {"--threads=2", "--max-queued-requests=4",
                        "--max-memory-bytes=268435456"};
  absl::StatusOr<RunningServer> server = StartServer(options);
  ASSERT_TRUE(server.ok()) << server.status();
  ServerProcess& process = *server->process;

  const RowBatch rows = RandomRows(kRows, kFeatures, 8);
  const std::vector<double> expected = ReferenceOutput(model, rows);
  std::vector<Request> requests(kKinds);
  auto request_for = [&](std::string_view name, const RowBatch& batch,
                         Encoding encoding) {
    absl::StatusOr<v1::PredictRequest> r =
        MakePredictRequest(name, 0, batch, encoding);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? SerializeToByteBuffer(*r) : grpc::ByteBuffer();
  };
  requests[kValidValues] = {
      request_for("soak", rows, Encoding::kValues),
      {grpc::StatusCode::OK, grpc::StatusCode::RESOURCE_EXHAUSTED}};
  requests[kValidRaw] = {
      request_for("soak", rows, Encoding::kRaw),
      {grpc::StatusCode::OK, grpc::StatusCode::RESOURCE_EXHAUSTED}};
  requests[kWrongShape] = {
      request_for("soak", RandomRows(kRows, kFeatures - 1, 9), Encoding::kRaw),
      {grpc::StatusCode::INVALID_ARGUMENT}};
  RowBatch with_nan = rows;
  with_nan.values[5 * kFeatures + 7] = std::nanf("");
  requests[kNaN] = {request_for("soak", with_nan, Encoding::kValues),
                    {grpc::StatusCode::INVALID_ARGUMENT}};
  requests[kUnknownModel] = {request_for("no-such-model", rows, Encoding::kRaw),
                             {grpc::StatusCode::NOT_FOUND}};
  // 0xff bytes: a field tag whose varint never ends.
  requests[kGarbage] = {ToByteBuffer(std::string(4096, '\xff')),
                        {grpc::StatusCode::UNIMPLEMENTED}};
  // 5 MiB of rows, over the derived 4 MiB limit.
  requests[kOversized] = {
      request_for("soak", RandomRows(5 * 1024, kFeatures, 10), Encoding::kRaw),
      {grpc::StatusCode::RESOURCE_EXHAUSTED}};
  // Over its memory quota gRPC closes connections (documented in README
  // "Security"): a caller on such a connection sees UNAVAILABLE, for any
  // kind of call, until it reconnects (seen under AddressSanitizer, whose
  // slower server falls behind more). That is load shedding, not a crash:
  // the server must still be running and SERVING at the end.
  for (Request& request : requests) {
    request.expected.insert(grpc::StatusCode::UNAVAILABLE);
  }

  Tally warm_up;
  RunRound(process.grpc_target(), requests, expected, kWarmUp, &warm_up);
  ExpectOnlyExpectedCodes(requests, warm_up, "warm-up");
  const int64_t rss_warm = IdleRss(process.pid());

  Tally soak;
  RunRound(process.grpc_target(), requests, expected, kSoak, &soak);
  ExpectOnlyExpectedCodes(requests, soak, "soak");
  const int64_t rss_after = IdleRss(process.pid());

  ASSERT_TRUE(process.Running()) << "the server died";
  EXPECT_TRUE(IsServing(*server->client, kInferenceService));
  std::cout << "[ soak ] idle RSS after warm-up " << rss_warm / 1024
            << " KiB, after the soak " << rss_after / 1024 << " KiB\n";
  // Built with AddressSanitizer (scripts/asan.sh), the server under test is
  // too: its allocator keeps freed blocks in a quarantine and never hands
  // them back, so its RSS says nothing about the production allocator's
  // (CI's ASan stage measured +11 % idle RSS over the soak, the normal build
  // about -3 %). There the RSS bound is not checked; every code and the
  // server surviving still are.
  if (!kAddressSanitizer) {
    EXPECT_LE(std::abs(rss_after - rss_warm), rss_warm / 10)
        << "RSS after warm-up " << rss_warm << " bytes, after the soak "
        << rss_after;
  }
}

}  // namespace
}  // namespace nnserve::testing
