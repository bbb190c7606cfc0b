// Tests of ServerProcess's stop check (tests/util/server_process.h): a
// child that writes a sanitizer report, or does not exit 0 on SIGTERM,
// fails the test that owns it — which is what makes an AddressSanitizer,
// LeakSanitizer or UBSan report in the real server fail the integration
// test that started it (scripts/asan.sh). A small shell script stands in
// for the server: it logs what the test asks and traps SIGTERM.
#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "gtest/gtest-spi.h"
#include "gtest/gtest.h"
#include "tests/util/model_builder.h"
#include "tests/util/server_process.h"

namespace nnserve::testing {
namespace {

using std::chrono::seconds;

// A stand-in "server": prints `output` (to stderr, as the runtimes do), then
// waits; on SIGTERM it exits with `exit_code`.
std::filesystem::path WriteFakeServer(const ScopedTempDir& dir,
                                      const std::string& output,
                                      int exit_code) {
  const std::filesystem::path path = dir.path() / "fake-nnserve";
  std::ofstream(path) << "#!/bin/sh\n"
                      << "trap 'exit " << exit_code << "' TERM\n"
                      << "printf '%s\\n' '" << output << "' >&2\n"
                      << "echo fake-server-ready >&2\n"
                      << "while :; do sleep 0.05; done\n";
  std::filesystem::permissions(path, std::filesystem::perms::owner_all);
  return path;
}

// Launches the fake server and waits until it has written its output.
std::unique_ptr<ServerProcess> LaunchFake(const ScopedTempDir& dir,
                                          const std::string& output,
                                          int exit_code) {
  ServerOptions options;
  options.binary = WriteFakeServer(dir, output, exit_code);
  options.model_repository = dir.path();
  absl::StatusOr<std::unique_ptr<ServerProcess>> process =
      ServerProcess::Launch(options);
  EXPECT_TRUE(process.ok()) << process.status();
  if (!process.ok()) return nullptr;
  absl::StatusOr<std::string> ready =
      (*process)->WaitForLogValue("fake-server-", seconds(30));
  EXPECT_TRUE(ready.ok()) << ready.status();
  return *std::move(process);
}

TEST(ServerProcessStopTest, CleanExitOnSigtermPasses) {
  ScopedTempDir dir("server_process_test");
  std::unique_ptr<ServerProcess> process =
      LaunchFake(dir, "event=listening", 0);
  ASSERT_NE(process, nullptr);
  process.reset();  // Any failure here fails this test.
}

TEST(ServerProcessStopTest, NonZeroExitOnSigtermFails) {
  ScopedTempDir dir("server_process_test");
  std::unique_ptr<ServerProcess> process =
      LaunchFake(dir, "event=listening", 66);
  ASSERT_NE(process, nullptr);
  EXPECT_NONFATAL_FAILURE(process.reset(),
                          "did not exit cleanly on SIGTERM: it exited with "
                          "code 66");
}

TEST(ServerProcessStopTest, AddressSanitizerReportFails) {
  ScopedTempDir dir("server_process_test");
  std::unique_ptr<ServerProcess> process = LaunchFake(
      dir,
      "==42==ERROR: AddressSanitizer: heap-use-after-free on address "
      "0x602000000010",
      0);
  ASSERT_NE(process, nullptr);
  EXPECT_NONFATAL_FAILURE(process.reset(),
                          "ERROR: AddressSanitizer: heap-use-after-free");
}

TEST(ServerProcessStopTest, UndefinedBehaviorReportFails) {
  ScopedTempDir dir("server_process_test");
  std::unique_ptr<ServerProcess> process = LaunchFake(
      dir,
      "engine/model.cc:10:5: runtime error: signed integer overflow: "
      "2147483647 + 1 cannot be represented in type int",
      0);
  ASSERT_NE(process, nullptr);
  EXPECT_NONFATAL_FAILURE(process.reset(), "runtime error: signed integer");
}

TEST(SanitizerReportTest, ReturnsTheReportFromItsFirstLine) {
  const std::string log =
      "event=listening grpc_port=1\n"
      "=================================================================\n"
      "==7==ERROR: LeakSanitizer: detected memory leaks\n"
      "Direct leak of 8 byte(s)\n"
      "    #0 0x1 in malloc\n";
  EXPECT_EQ(SanitizerReport(log),
            "==7==ERROR: LeakSanitizer: detected memory leaks\n"
            "Direct leak of 8 byte(s)\n"
            "    #0 0x1 in malloc\n");
  EXPECT_EQ(SanitizerReport(log, 2),
            "==7==ERROR: LeakSanitizer: detected memory leaks\n"
            "Direct leak of 8 byte(s)\n");
  EXPECT_EQ(SanitizerReport("event=listening\nevent=shutdown_complete\n"), "");
}

}  // namespace
}  // namespace nnserve::testing
